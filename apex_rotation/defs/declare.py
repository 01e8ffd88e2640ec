"""One way to declare a partitioned asset and its checks, so every asset reads the same in code and in the UI.

Every asset here writes through the Parquet store and returns no value (Dagster's IO manager never pickles
a frame), runs all asked partitions in one step (single-run backfill policy), reports its checks as
"passed when nothing was found, the findings as metadata", and takes a slot of the `apex_store` pool while
it runs: with the instance's `concurrency.pools.default_limit: 1` (dagster.yaml) no two runs ever write the
store at once, whoever launched them (`apex run`, a schedule, the automation sensor, a backfill).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.incremental import Stage, StepReport, timeframe_chain, timeframe_step
from apex_rotation.defs.metadata import basket_metadata, latest_tables
from apex_rotation.log import redact_obj
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import Table

POOL = "apex_store"


def partitioned_asset(
    *,
    partitions_def: dg.PartitionsDefinition,
    group: str,
    description: str,
    checks: Sequence[dg.AssetCheckSpec] = (),
    deps: Sequence[dg.AssetDep | dg.AssetsDefinition | dg.AssetKey] = (),
    automation_condition: dg.AutomationCondition | None = None,
):
    """`@dg.asset` for a store-backed asset: all asked partitions in one run, kind parquet, pool `apex_store`."""
    return dg.asset(
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=group,
        kinds={"parquet"},
        deps=list(deps),
        check_specs=list(checks),
        description=description,
        pool=POOL,
        automation_condition=automation_condition,
    )


def partitioned_multi_asset(
    *,
    name: str,
    partitions_def: dg.PartitionsDefinition,
    specs: Sequence[dg.AssetSpec],
    checks: Sequence[dg.AssetCheckSpec] = (),
    required_resource_keys: set[str] | None = None,
):
    """`@dg.multi_asset` for store-backed assets one step computes together (as `partitioned_asset`: one run
    for all asked partitions, pool `apex_store`); any subset of them can be materialized alone."""
    return dg.multi_asset(
        name=name,
        specs=list(specs),
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=list(checks),
        can_subset=True,
        pool=POOL,
        required_resource_keys=required_resource_keys,
    )


def refuse_checks_alone(context: dg.AssetExecutionContext) -> None:
    """A step of several assets can be asked for checks alone (Dagster's "Execute" on a check). Its checks
    say what computing the asset found, so they run with it: say so in one line instead of Dagster's
    error about a run without partitions."""
    if not context.selected_asset_keys:
        checks = ", ".join(sorted(k.name for k in context.selected_asset_check_keys)) or "its checks"
        raise dg.Failure(
            description=f"{checks}: a check here runs with its asset (it reports what computing the "
            "partitions found); materialize the asset's partitions to check them"
        )


def check_spec(asset: str, name: str, description: str, *, blocking: bool = True) -> dg.AssetCheckSpec:
    """A check named `<asset>_<name>`; a blocking one stops downstream steps when it fails."""
    return dg.AssetCheckSpec(f"{asset}_{name}", asset=asset, blocking=blocking, description=description)


def problems_check(
    name: str,
    problems: dict,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    asset: str | None = None,
    **metadata,
) -> dg.AssetCheckResult:
    """A check that passes when `problems` (partition → what is wrong) is empty; secrets redacted. `asset`
    names the checked asset where a step materializes several."""
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset,
        passed=not problems,
        severity=severity,
        metadata={**metadata, "problems": dg.MetadataValue.json(redact_obj(problems))},
    )


def timeframe_result(
    context: dg.AssetExecutionContext,
    store: ParquetStore,
    cfg: AppConfig,
    check: str,
    compute: Callable[[str], tuple[object, object]],
    *,
    table: Table | None = None,
    latest_columns: Sequence[str] = (),
) -> dg.MaterializeResult:
    """The body every per-timeframe store step shares: compute the asked timeframes whose inputs changed
    (`compute(tf) -> (summary, problems)`), say what ran, and report the metadata and the one check."""
    asset = context.assets_def.key.to_user_string()
    timeframes = context.partition_keys
    report = timeframe_step(store, cfg, asset, timeframes, compute=compute)
    report.say(context.log, asset)
    metadata = _timeframe_metadata(store, report, timeframes, table, latest_columns)
    return dg.MaterializeResult(metadata=metadata, check_results=[problems_check(check, report.problems)])


def _timeframe_metadata(
    store: ParquetStore,
    report: StepReport,
    timeframes: Sequence[str],
    table: Table | None,
    latest_columns: Sequence[str],
) -> dict:
    metadata = {"by_timeframe": dg.MetadataValue.json(report.summaries), **report.metadata()}
    if table is not None:
        metadata |= basket_metadata(store, table, timeframes)
    if latest_columns:
        metadata |= latest_tables(store, table, timeframes, list(latest_columns))
    return metadata


def chained_spec(name: str, *, group: str, deps: Sequence, description: str) -> dg.AssetSpec:
    """The spec of a `ChainedAsset`: kind parquet, skippable (a subset of the step's assets can be
    materialized alone), and run when its inputs are fresh (`eager`): after a bar-close data run updates a
    timeframe's features, the automation sensor requests that timeframe's partition of every signal asset
    (one run)."""
    return dg.AssetSpec(
        name,
        deps=list(deps),
        group_name=group,
        kinds={"parquet"},
        automation_condition=dg.AutomationCondition.eager(),
        skippable=True,
        description=description,
    )


@dataclass(frozen=True)
class ChainedAsset:
    """A per-timeframe store asset computed by `timeframe_chain_asset`: its spec and one check, and
    `stage(store, tf) -> (summary, problems)`, the `compute` of `timeframe_result` given the store."""

    spec: dg.AssetSpec
    check: dg.AssetCheckSpec
    stage: Callable[[ParquetStore, str], tuple[object, object]]
    table: Table | None = None
    latest_columns: Sequence[str] = ()

    @property
    def name(self) -> str:
        return self.spec.key.to_user_string()


def timeframe_chain_asset(
    name: str, cfg: AppConfig, partitions_def: dg.PartitionsDefinition, assets: Sequence[ChainedAsset]
) -> dg.AssetsDefinition:
    """Per-timeframe assets that read one another, in one step: each asked timeframe runs their stages in
    order as one task (defs/incremental.py, `timeframe_chain`), and each asset reports as
    `timeframe_result` would (metadata, its check). Any subset can be materialized alone."""

    @partitioned_multi_asset(
        name=name,
        partitions_def=partitions_def,
        specs=[a.spec for a in assets],
        checks=[a.check for a in assets],
        required_resource_keys={"store"},  # not annotated: this module's annotations are strings
    )
    def chained(context):
        refuse_checks_alone(context)
        st, timeframes = context.resources.store.store, context.partition_keys
        selected = {key.to_user_string() for key in context.selected_asset_keys}
        chosen = [a for a in assets if a.name in selected]
        stages = [Stage(a.name, partial(a.stage, st), blocking=a.check.blocking) for a in chosen]
        reports = timeframe_chain(st, cfg, stages, timeframes)
        for a in chosen:
            report = reports[a.name]
            report.say(context.log, a.name)
            yield dg.MaterializeResult(
                asset_key=a.name,
                metadata=_timeframe_metadata(st, report, timeframes, a.table, a.latest_columns),
                check_results=[problems_check(a.check.name, report.problems, asset=a.name)],
            )

    return chained
