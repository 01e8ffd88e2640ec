"""`features` and `td_state`: symbol × timeframe partitions, computed from `audited_bars` through the store.

An alt's features need BTC's and ETH's bars of the same timeframe: the dependency is declared with a
partition mapping (`features[SOL|4h]` depends on `audited_bars[{BTC,ETH,SOL}|4h]`), and the bars are read
from the store because the DuckDB IO manager cannot load a non-contiguous upstream set.
"""

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.declare import check_spec, partitioned_asset, problems_check
from apex_rotation.defs.incremental import Fingerprints, SymbolStep
from apex_rotation.defs.metadata import table_metadata
from apex_rotation.defs.partitions import SYMBOL_DIM, TIMEFRAME_DIM, split_keys, symbol_timeframe_partitions
from apex_rotation.defs.resources import StoreResource
from apex_rotation.features.build import BENCHMARKS
from apex_rotation.features.compute import compute_feature_partitions, compute_td_state
from apex_rotation.parallel import map_partitions
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


def build_feature_assets(cfg: AppConfig, audited_bars: dg.AssetsDefinition) -> list[dg.AssetsDefinition]:
    partitions = symbol_timeframe_partitions(cfg)

    @partitioned_asset(
        partitions_def=partitions,
        group=GROUP,
        deps=[dg.AssetDep(audited_bars, partition_mapping=own_plus_benchmarks(cfg))],
        checks=[
            check_spec(
                "features",
                "invariants",
                "Each partition valid against features_schema (ranges of RSI, ADX, corr; UTC index) before "
                "it is written; a partition that fails is not written.",
            )
        ],
        description="Returns, vol_z, ATR, RSI, MACD, EMA 20/50/200, ADX/DI, Fibonacci zone, volume trend, "
        "funding, OI change, and rolling corr/beta vs BTC and ETH over 14 and 30 days.",
    )
    def features(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        st = store.store
        pairs = split_keys(partitions, context.partition_keys)
        step = features_step(cfg, st)
        stale, report = step.split(pairs)
        found = compute_feature_partitions(cfg, st, stale)
        problems = {f"{s}|{tf}": p for (s, tf), p in found.items()}
        step.record(stale, problems)
        report.say(context.log, "features")
        return dg.MaterializeResult(
            metadata={"partitions": len(pairs), **report.metadata(), **table_metadata(st, FEATURES, pairs)},
            check_results=[problems_check("features_invariants", problems)],
        )

    @partitioned_asset(
        partitions_def=partitions,
        group=GROUP,
        deps=[audited_bars],
        checks=[
            check_spec(
                "td_state",
                "invariants",
                "Each partition valid against td_state_schema (counts in range, known types) before it is "
                "written; a partition that fails is not written.",
            )
        ],
        description="TD Sequential state per bar (../shared/specs/td_sequential.md; profile from config).",
    )
    def td_state(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        st = store.store
        pairs = split_keys(partitions, context.partition_keys)
        step = td_state_step(cfg, st)
        stale, report = step.split(pairs)
        found = map_partitions(lambda pair: compute_td_state(cfg, st, pair[1], pair[0]), stale, prime=True)
        problems = {f"{s}|{tf}": p for (s, tf), p in zip(stale, found, strict=True) if p}
        step.record(stale, problems)
        report.say(context.log, "td_state")
        return dg.MaterializeResult(
            metadata={"partitions": len(pairs), **report.metadata(), **table_metadata(st, TD_STATE, pairs)},
            check_results=[problems_check("td_state_invariants", problems)],
        )

    return [features, td_state]
