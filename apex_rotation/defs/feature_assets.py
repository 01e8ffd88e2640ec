"""`features` and `td_state`: symbol × timeframe partitions, computed from `audited_bars` through the store.

An alt's features need BTC's and ETH's bars of the same timeframe: the dependency is declared with a
partition mapping (`features[SOL|4h]` depends on `audited_bars[{BTC,ETH,SOL}|4h]`), and the bars are read
from the store because the DuckDB IO manager cannot load a non-contiguous upstream set.
"""

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.declare import (
    check_spec,
    partitioned_multi_asset,
    problems_check,
    refuse_checks_alone,
)
from apex_rotation.defs.incremental import Fingerprints, SymbolStep
from apex_rotation.defs.metadata import table_metadata
from apex_rotation.defs.partitions import SYMBOL_DIM, TIMEFRAME_DIM, split_keys, symbol_timeframe_partitions
from apex_rotation.defs.resources import StoreResource
from apex_rotation.features.build import BENCHMARKS
from apex_rotation.features.compute import compute_feature_tables
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import AUDITED_BARS, FEATURES, FUNDING, OPEN_INTEREST, TD_STATE

GROUP = "features"


def own_plus_benchmarks(cfg: AppConfig) -> dg.MultiPartitionMapping:
    """features[X|tf] ← audited_bars[{X, BTC, ETH}|tf]."""
    names = cfg.basket.names
    upstream_to_downstream = {s: {s} for s in names}
    for bench in BENCHMARKS:
        if bench in upstream_to_downstream:
            upstream_to_downstream[bench] = set(names)
    return dg.MultiPartitionMapping(
        {
            SYMBOL_DIM: dg.DimensionPartitionMapping(
                SYMBOL_DIM, dg.StaticPartitionMapping(upstream_to_downstream)
            ),
            TIMEFRAME_DIM: dg.DimensionPartitionMapping(TIMEFRAME_DIM, dg.IdentityPartitionMapping()),
        }
    )


def features_step(cfg: AppConfig, st: ParquetStore) -> SymbolStep:
    """features[s|tf] reads audited_bars of s, BTC and ETH at tf, and s's funding and open interest."""
    bench = [b for b in BENCHMARKS if b in cfg.basket.names]
    return SymbolStep(
        Fingerprints(st, "features", cfg),
        inputs=lambda s, tf: [
            *(st.path(AUDITED_BARS, tf, x) for x in {s, *bench}),
            st.path(FUNDING, None, s),
            st.path(OPEN_INTEREST, None, s),
        ],
        output=lambda s, tf: st.path(FEATURES, tf, s),
    )


def td_state_step(cfg: AppConfig, st: ParquetStore) -> SymbolStep:
    return SymbolStep(
        Fingerprints(st, "td_state", cfg),
        inputs=lambda s, tf: [st.path(AUDITED_BARS, tf, s)],
        output=lambda s, tf: st.path(TD_STATE, tf, s),
    )


FEATURES_DESCRIPTION = (
    "Returns, vol_z, ATR, RSI, MACD, EMA 20/50/200, ADX/DI, Fibonacci zone, volume trend, funding, OI change, "
    "and rolling corr/beta vs BTC and ETH over 14 and 30 days."
)
TD_STATE_DESCRIPTION = "TD Sequential state per bar (../shared/specs/td_sequential.md; profile from config)."


def build_feature_assets(cfg: AppConfig, audited_bars: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """`features` and `td_state`, computed in one step (`feature_tables`): both are built from the same
    audited bars, so one task per partition reads them once, and a bar close runs one step fewer (its
    Dagster bookkeeping and its round of worker processes). Each asset keeps its own partitions, metadata
    and check, and either can be materialized alone."""
    partitions = symbol_timeframe_partitions(cfg)

    @partitioned_multi_asset(
        name="feature_tables",
        partitions_def=partitions,
        specs=[
            dg.AssetSpec(
                FEATURES.name,
                deps=[dg.AssetDep(audited_bars, partition_mapping=own_plus_benchmarks(cfg))],
                group_name=GROUP,
                kinds={"parquet"},
                description=FEATURES_DESCRIPTION,
                skippable=True,
            ),
            dg.AssetSpec(
                TD_STATE.name,
                deps=[audited_bars],
                group_name=GROUP,
                kinds={"parquet"},
                description=TD_STATE_DESCRIPTION,
                skippable=True,
            ),
        ],
        checks=[
            check_spec(
                "features",
                "invariants",
                "Each partition valid against features_schema (ranges of RSI, ADX, corr; UTC index) before "
                "it is written; a partition that fails is not written.",
            ),
            check_spec(
                "td_state",
                "invariants",
                "Each partition valid against td_state_schema (counts in range, known types) before it is "
                "written; a partition that fails is not written.",
            ),
        ],
    )
    def feature_tables(context: dg.AssetExecutionContext, store: StoreResource):
        refuse_checks_alone(context)
        st = store.store
        pairs = split_keys(partitions, context.partition_keys)
        selected = {key.to_user_string() for key in context.selected_asset_keys}
        tables = [t for t in (FEATURES, TD_STATE) if t.name in selected]
        steps = {t.name: TABLE_STEPS[t.name](cfg, st) for t in tables}
        split = {name: step.split(pairs) for name, step in steps.items()}  # (stale pairs, report)
        stale = {name: todo for name, (todo, _) in split.items()}
        found = compute_feature_tables(
            cfg, st, features=stale.get(FEATURES.name, []), td_states=stale.get(TD_STATE.name, [])
        )
        found_by_table = dict(zip((FEATURES.name, TD_STATE.name), found, strict=True))
        for table in tables:
            report = split[table.name][1]
            problems = {f"{s}|{tf}": p for (s, tf), p in found_by_table[table.name].items()}
            steps[table.name].record(stale[table.name], problems)
            report.say(context.log, table.name)
            yield dg.MaterializeResult(
                asset_key=table.name,
                metadata={"partitions": len(pairs), **report.metadata(), **table_metadata(st, table, pairs)},
                check_results=[problems_check(f"{table.name}_invariants", problems, asset=table.name)],
            )

    return feature_tables


TABLE_STEPS = {FEATURES.name: features_step, TD_STATE.name: td_state_step}
