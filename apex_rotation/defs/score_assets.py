"""`scores`: the composer's scored signals, one partition per timeframe, across every basket symbol."""

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.declare import ChainedAsset, chained_spec, check_spec
from apex_rotation.defs.partitions import TIMEFRAME_DIM
from apex_rotation.signals.scoring import score_problems, score_timeframe
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import CONFIRMATIONS, SCORES

GROUP = "signals"


def build_score_assets(cfg: AppConfig, features: dg.AssetKey, td_state: dg.AssetKey) -> list[ChainedAsset]:
    """`scores`, computed in the `signal_tables` step (defs/build.py) after the confirmations it scores."""
    across_symbols = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=TIMEFRAME_DIM)

    def score(store: ParquetStore, tf: str):
        frame = score_timeframe(cfg, store, tf)
        fired = frame[frame["fired"]]
        counts = {
            "signals": len(frame),
            "fired": len(fired),
            **{f"fired_{k}": int(v) for k, v in fired["archetype"].value_counts().items()},
        }
        return counts, score_problems(cfg, store, tf)

    scores = ChainedAsset(
        spec=chained_spec(
            SCORES.name,
            group=GROUP,
            deps=[
                CONFIRMATIONS.name,
                dg.AssetDep(features, partition_mapping=across_symbols),
                dg.AssetDep(td_state, partition_mapping=across_symbols),
            ],
            description="Every signal scored by the composer (signals/score.py): rotation watches on the bar "
            "they confirmed or expired, TD 13s on td.htf; narrative, market, technical, rotation and TD blocks, "
            "regime weighting, HTF/LTF conflict, cool-down, reasons and the trade plan. Reads td_state of "
            "td.htf and td.ltf too (bars closed by each signal's close).",
        ),
        check=check_spec(
            "scores",
            "sound",
            "The stored table is valid against scores_schema: every fired signal has a plan, a score ≥ "
            "score.alert_threshold and no suppression, every other one says why; ids are unique; and no "
            "signal re-fired inside td.cooldown_bars without its score rising by score.rescore_margin.",
        ),
        stage=score,
        table=SCORES,
    )
    return [scores]
