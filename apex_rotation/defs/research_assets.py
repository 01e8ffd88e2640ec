"""`scanner_quality` (the research figures of the scan, one partition per timeframe) and `backtest_report`
(the walk-forward with its ablations over the whole store, not partitioned)."""

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.declare import ChainedAsset, chained_spec, check_spec
from apex_rotation.defs.resources import StoreResource
from apex_rotation.research import backtest
from apex_rotation.research import scanner_quality as quality
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import ROTATION_CANDIDATES, SCANNER_QUALITY

GROUP = "research"


def quality_problems(row: dict) -> list[str]:
    """Counts that cannot all be true at once (a figure that contradicts the candidates it came from)."""
    problems = []
    if (
        row["hindsight_caught_up_half"] > row["hindsight_evaluated"]
        or row["hindsight_evaluated"] > row["candidates"]
    ):
        problems.append(f"hindsight counts inconsistent: {row}")
    if row["vs_ground_truth"] and row["tp"] + row["fp"] > row["candidates"]:
        problems.append(f"more matched alt-bars than candidates: {row}")
    return problems


def build_research_assets(cfg: AppConfig) -> list[ChainedAsset]:
    """`scanner_quality`, computed in the `signal_tables` step (defs/build.py) after the scan it measures."""

    def measure(store: ParquetStore, tf: str):
        row = quality.scanner_quality(cfg, store, tf).iloc[0].to_dict()
        return row, quality_problems(row)

    scanner_quality = ChainedAsset(
        spec=chained_spec(
            SCANNER_QUALITY.name,
            group=GROUP,
            deps=[ROTATION_CANDIDATES.name],
            description="How good the scan is: precision/recall against the planted truth (synthetic market "
            "only) and the hindsight catch-up rate of the flagged alts. Read by the run summary; never an "
            "input to a signal.",
        ),
        check=check_spec(
            "scanner_quality",
            "consistent",
            "The figures agree with the candidates they were computed from (no more hits than candidates).",
            blocking=False,
        ),
        stage=measure,
    )
    return [scanner_quality]


def build_backtest_report(cfg: AppConfig, deps: list[dg.AssetKey]) -> dg.AssetsDefinition:
    """`backtest_report`: `apex backtest` from the asset graph (the store's features and TD state)."""

    @dg.asset(
        group_name=GROUP,
        kinds={"csv", "html"},
        deps=deps,
        description="The walk-forward backtest with every filter ablation, the lift table with bootstrap "
        "intervals and the placebo control (apex_rotation/research/, docs/research.md): CSVs and the plot "
        "pack under <store>/research/. Reuses the live composer and simulator; never an input to a signal.",
    )
    def backtest_report(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        result = backtest.run_backtest(cfg, store.store)
        context.log.info(f"backtest_report: {result.files}")
        return dg.MaterializeResult(
            metadata={
                "summary": dg.MetadataValue.md(backtest.summary_table(result.summary)),
                "lift": dg.MetadataValue.md(backtest.lift_markdown(result.lift)),
                "plot_index": dg.MetadataValue.path(str(result.files.get("plots", result.out))),
                "out": dg.MetadataValue.path(str(result.out)),
            }
        )

    return backtest_report
