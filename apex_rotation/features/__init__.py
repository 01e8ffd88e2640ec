"""Feature stage: the feature store loader, indicators, correlation/beta and TD Sequential."""

from apex_rotation.features.loader import load

__all__ = ["load"]
