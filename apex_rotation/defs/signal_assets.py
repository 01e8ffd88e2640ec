"""`rotation_candidates` and `confirmations`: one partition per timeframe, across every basket symbol."""

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.declare import check_spec, partitioned_asset, problems_check
from apex_rotation.defs.partitions import TIMEFRAME_DIM, timeframe_partitions
from apex_rotation.defs.resources import StoreResource
from apex_rotation.signals.scanning import scan_timeframe
from apex_rotation.signals.watching import confirm_history, confirmation_problems, latest_status

GROUP = "signals"


def build_signal_assets(cfg: AppConfig, features: dg.AssetsDefinition) -> list[dg.AssetsDefinition]:
    partitions = timeframe_partitions()
    across_symbols = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=TIMEFRAME_DIM)

    @partitioned_asset(
        partitions_def=partitions,
        group=GROUP,
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
        metadata, violations = {}, {}
        for tf in context.partition_keys:
            result = scan_timeframe(cfg, store.store, tf)
            metadata[tf] = result.summary()
            if result.gate_violations:
                violations[tf] = result.gate_violations
        return dg.MaterializeResult(
            metadata={"by_timeframe": dg.MetadataValue.json(metadata)},
            check_results=[problems_check("rotation_candidates_gates", violations)],
        )

    @partitioned_asset(
        partitions_def=partitions,
        group=GROUP,
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
        counts, problems = {}, {}
        for tf in context.partition_keys:
            frame = confirm_history(cfg, store.store, tf)
            final = latest_status(frame)
            counts[tf] = {
                "candidates": len(final),
                **({} if final.empty else final["status"].value_counts().to_dict()),
            }
            found = confirmation_problems(cfg, store.store, tf)
            if found:
                problems[tf] = found
        return dg.MaterializeResult(
            metadata={"by_timeframe": dg.MetadataValue.json(counts)},
            check_results=[problems_check("confirmations_consistent", problems)],
        )

    return [rotation_candidates, confirmations]
