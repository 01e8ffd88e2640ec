"""`rotation_candidates` and `confirmations`: one partition per timeframe, across every basket symbol."""

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.declare import ChainedAsset, chained_spec, check_spec
from apex_rotation.defs.partitions import TIMEFRAME_DIM
from apex_rotation.signals.scanning import scan_timeframe
from apex_rotation.signals.watching import confirm_history, confirmation_problems, latest_status
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import CONFIRMATIONS, ROTATION_CANDIDATES

GROUP = "signals"
CANDIDATE_COLUMNS = [
    "bar_time",
    "symbol",
    "apex_asset",
    "signal_strength",
    "apex_move_pct",
    "coin_move_pct",
    "expected_catchup_pct",
    "correlation",
    "beta",
    "status",
]
CONFIRMATION_COLUMNS = ["bar_time", "symbol", "eval_time", "bars_after", "status", "reasons"]


def build_signal_assets(cfg: AppConfig, features: dg.AssetKey) -> list[ChainedAsset]:
    """`rotation_candidates` and `confirmations`, computed in the `signal_tables` step (defs/build.py)."""
    across_symbols = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=TIMEFRAME_DIM)

    def scan(store: ParquetStore, tf: str):
        result = scan_timeframe(cfg, store, tf)
        return result.summary(), result.gate_violations

    def confirm(store: ParquetStore, tf: str):
        final = latest_status(confirm_history(cfg, store, tf))
        counts = {
            "candidates": len(final),
            **({} if final.empty else final["status"].value_counts().to_dict()),
        }
        return counts, confirmation_problems(cfg, store, tf)

    rotation_candidates = ChainedAsset(
        spec=chained_spec(
            ROTATION_CANDIDATES.name,
            group=GROUP,
            deps=[dg.AssetDep(features, partition_mapping=across_symbols)],
            description="LAGGING_ROTATION candidates on every bar: apex move ≥ threshold, alt lagging, "
            "corr/beta gates at the bar before. Also persists the basket's corr/beta profile.",
        ),
        check=check_spec(
            "rotation_candidates",
            "gates",
            "No candidate breaks a configured gate (apex move, alt lag, corr, beta).",
        ),
        stage=scan,
        table=ROTATION_CANDIDATES,
        latest_columns=CANDIDATE_COLUMNS,
    )
    confirmations = ChainedAsset(
        spec=chained_spec(
            CONFIRMATIONS.name,
            group=GROUP,
            deps=[ROTATION_CANDIDATES.name, dg.AssetDep(features, partition_mapping=across_symbols)],
            description="Each candidate watched from its trigger bar for `confirm_window_bars` bars: pass/fail "
            "of the configured rule and the reason of every filter (volume spike, breakout, OI shift, funding "
            "flip/hot) per bar; missing data is said, never passed.",
        ),
        check=check_spec(
            "confirmations",
            "consistent",
            "The stored table is valid against confirmations_schema and watches every candidate exactly "
            "once, confirming it at most once.",
        ),
        stage=confirm,
        table=CONFIRMATIONS,
        latest_columns=CONFIRMATION_COLUMNS,
    )
    return [rotation_candidates, confirmations]
