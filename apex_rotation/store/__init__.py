"""Parquet store, canonical resampling, audit and the refresh that fills them."""
