"""`rotation_candidates` and `confirmations`: one partition per timeframe, across every basket symbol."""

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.declare import check_spec, partitioned_asset, timeframe_result
from apex_rotation.defs.partitions import TIMEFRAME_DIM, timeframe_partitions
from apex_rotation.defs.resources import StoreResource
from apex_rotation.signals.scanning import scan_timeframe
from apex_rotation.signals.watching import confirm_history, confirmation_problems, latest_status
from apex_rotation.store.tables import CONFIRMATIONS, ROTATION_CANDIDATES

GROUP = "signals"
# The signal stages run when their inputs are fresh: after a bar-close data run updates a timeframe's
# features, the automation sensor requests that timeframe's partition of every signal asset (one run).
FRESH = dg.AutomationCondition.eager()
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


def build_signal_assets(cfg: AppConfig, features: dg.AssetKey) -> list[dg.AssetsDefinition]:
    partitions = timeframe_partitions()
    across_symbols = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=TIMEFRAME_DIM)

    @partitioned_asset(
        partitions_def=partitions,
        group=GROUP,
        automation_condition=FRESH,
        deps=[dg.AssetDep(features, partition_mapping=across_symbols)],
        checks=[
            check_spec(
                "rotation_candidates",
                "gates",
                "No candidate breaks a configured gate (apex move, alt lag, corr, beta).",
            )
        ],
        description="LAGGING_ROTATION candidates on every bar: apex move ≥ threshold, alt lagging, corr/beta "
        "gates at the bar before. Also persists the basket's corr/beta profile.",
    )
    def rotation_candidates(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        def scan(tf: str):
            result = scan_timeframe(cfg, store.store, tf)
            return result.summary(), result.gate_violations

        return timeframe_result(
            context,
            store.store,
            cfg,
            "rotation_candidates_gates",
            scan,
            table=ROTATION_CANDIDATES,
            latest_columns=CANDIDATE_COLUMNS,
        )

    @partitioned_asset(
        partitions_def=partitions,
        group=GROUP,
        automation_condition=FRESH,
        deps=[rotation_candidates, dg.AssetDep(features, partition_mapping=across_symbols)],
        checks=[
            check_spec(
                "confirmations",
                "consistent",
                "The stored table is valid against confirmations_schema and watches every candidate exactly "
                "once, confirming it at most once.",
            )
        ],
        description="Each candidate watched from its trigger bar for `confirm_window_bars` bars: pass/fail of "
        "the configured rule and the reason of every filter (volume spike, breakout, OI shift, funding "
        "flip/hot) per bar; missing data is said, never passed.",
    )
    def confirmations(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        def confirm(tf: str):
            final = latest_status(confirm_history(cfg, store.store, tf))
            counts = {
                "candidates": len(final),
                **({} if final.empty else final["status"].value_counts().to_dict()),
            }
            return counts, confirmation_problems(cfg, store.store, tf)

        return timeframe_result(
            context,
            store.store,
            cfg,
            "confirmations_consistent",
            confirm,
            table=CONFIRMATIONS,
            latest_columns=CONFIRMATION_COLUMNS,
        )

    return [rotation_candidates, confirmations]
