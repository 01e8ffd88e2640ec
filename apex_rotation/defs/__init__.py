"""The Dagster layer: it wires the pure core into assets, checks, jobs, schedules and sensors. Thin."""
