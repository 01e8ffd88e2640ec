"""`rotation_candidates` and `confirmations`: one partition per timeframe, across every basket symbol."""

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.checks import problems_check
from apex_rotation.defs.partitions import TIMEFRAME_DIM, timeframe_partitions
from apex_rotation.defs.resources import ApexResource
from apex_rotation.signals.stage import confirm_history, confirmation_problems, latest_status, scan_timeframe


def build_signal_assets(cfg: AppConfig, features: dg.AssetsDefinition) -> list[dg.AssetsDefinition]:
    partitions = timeframe_partitions()
    across_symbols = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=TIMEFRAME_DIM)

    @dg.asset(
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="signals",
        kinds={"parquet"},
        deps=[dg.AssetDep(features, partition_mapping=across_symbols)],
        check_specs=[
            dg.AssetCheckSpec("rotation_candidates_gates", asset="rotation_candidates", blocking=True)
        ],
        description="LAGGING_ROTATION candidates on every bar: apex move ≥ threshold, alt lagging, corr/beta "
        "gates at the bar before. Also persists the basket's corr/beta profile.",
    )
    def rotation_candidates(context: dg.AssetExecutionContext, apex: ApexResource) -> dg.MaterializeResult:
        metadata, violations = {}, {}
        for tf in context.partition_keys:
            result = scan_timeframe(apex.config, apex.store, tf)
            metadata[tf] = result.summary()
            if result.gate_violations:
                violations[tf] = result.gate_violations
        return dg.MaterializeResult(
            metadata={"by_timeframe": dg.MetadataValue.json(metadata)},
            check_results=[problems_check("rotation_candidates_gates", violations)],
        )

    @dg.asset(
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="signals",
        kinds={"parquet"},
        deps=[rotation_candidates, dg.AssetDep(features, partition_mapping=across_symbols)],
        check_specs=[dg.AssetCheckSpec("confirmations_consistent", asset="confirmations", blocking=True)],
        description="Each candidate watched from its trigger bar for `confirm_window_bars` bars: pass/fail of "
        "the configured rule and the reason of every filter (volume spike, breakout, OI shift, funding "
        "flip/hot) per bar; missing data is said, never passed.",
    )
    def confirmations(context: dg.AssetExecutionContext, apex: ApexResource) -> dg.MaterializeResult:
        counts, problems = {}, {}
        for tf in context.partition_keys:
            frame = confirm_history(apex.config, apex.store, tf)
            final = latest_status(frame)
            counts[tf] = {
                "candidates": len(final),
                **({} if final.empty else final["status"].value_counts().to_dict()),
            }
            found = confirmation_problems(apex.config, apex.store, tf)
            if found:
                problems[tf] = found
        return dg.MaterializeResult(
            metadata={"by_timeframe": dg.MetadataValue.json(counts)},
            check_results=[problems_check("confirmations_consistent", problems)],
        )

    return [rotation_candidates, confirmations]
