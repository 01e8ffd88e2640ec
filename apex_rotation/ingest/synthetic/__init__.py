"""The `synthetic` source: an offline, deterministic factor market with planted episodes and ground truth.

Why: the pipeline needs a default source that works without a network and whose right answers are known, so
every later stage can be measured against them. What the market looks like, what is planted and what the
ground-truth columns mean: docs/synthetic-market.md. Modules: profiles (per-symbol parameters), market (the
factor model and derived series), episodes (planted facts), truth (the ground-truth table), source (the
MarketDataSource), state and numeric (shared by the others).
"""

from apex_rotation.ingest.synthetic.market import INTEREST, SyntheticMarket, build_market
from apex_rotation.ingest.synthetic.numeric import HOUR_MS, TIMEFRAME_HOURS, corr_beta
from apex_rotation.ingest.synthetic.profiles import PROFILE_COLUMNS, Profile, make_profiles, profile_table
from apex_rotation.ingest.synthetic.source import SyntheticSource
from apex_rotation.ingest.synthetic.truth import GROUND_TRUTH_COLUMNS

__all__ = [
    "GROUND_TRUTH_COLUMNS",
    "HOUR_MS",
    "INTEREST",
    "PROFILE_COLUMNS",
    "TIMEFRAME_HOURS",
    "Profile",
    "SyntheticMarket",
    "SyntheticSource",
    "build_market",
    "corr_beta",
    "make_profiles",
    "profile_table",
]
