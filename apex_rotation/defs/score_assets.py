"""`scores`: the composer's scored signals, one partition per timeframe, across every basket symbol."""

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.declare import check_spec, partitioned_asset, timeframe_result
from apex_rotation.defs.partitions import TIMEFRAME_DIM, timeframe_partitions
from apex_rotation.defs.resources import StoreResource
from apex_rotation.signals.scoring import score_problems, score_timeframe
from apex_rotation.store.tables import SCORES

GROUP = "signals"


def build_score_assets(
    cfg: AppConfig,
    confirmations: dg.AssetsDefinition,
    features: dg.AssetKey,
    td_state: dg.AssetKey,
) -> list[dg.AssetsDefinition]:
    across_symbols = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=TIMEFRAME_DIM)

    @partitioned_asset(
        partitions_def=timeframe_partitions(),
        group=GROUP,
        automation_condition=dg.AutomationCondition.eager(),
        deps=[
            confirmations,
            dg.AssetDep(features, partition_mapping=across_symbols),
            dg.AssetDep(td_state, partition_mapping=across_symbols),
        ],
        checks=[
            check_spec(
                "scores",
                "sound",
                "The stored table is valid against scores_schema: every fired signal has a plan, a score ≥ "
                "score.alert_threshold and no suppression, every other one says why; ids are unique; and no "
                "signal re-fired inside td.cooldown_bars without its score rising by score.rescore_margin.",
            )
        ],
        description="Every signal scored by the composer (signals/score.py): rotation watches on the bar they "
        "confirmed or expired, TD 13s on td.htf; narrative, market, technical, rotation and TD blocks, regime "
        "weighting, HTF/LTF conflict, cool-down, reasons and the trade plan. Reads td_state of td.htf and "
        "td.ltf too (bars closed by each signal's close).",
    )
    def scores(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        def score(tf: str):
            frame = score_timeframe(cfg, store.store, tf)
            fired = frame[frame["fired"]]
            counts = {
                "signals": len(frame),
                "fired": len(fired),
                **{f"fired_{k}": int(v) for k, v in fired["archetype"].value_counts().items()},
            }
            return counts, score_problems(cfg, store.store, tf)

        return timeframe_result(context, store.store, cfg, "scores_sound", score, table=SCORES)

    return [scores]
