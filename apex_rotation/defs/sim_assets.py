"""`sim_trades`: the dry-run trade of every alert, one partition per timeframe."""

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.declare import check_spec, partitioned_asset, problems_check
from apex_rotation.defs.partitions import timeframe_partitions
from apex_rotation.defs.resources import StoreResource
from apex_rotation.exec.sim import exports_path, sim_problems, simulate_timeframe

GROUP = "exec"
# The alerts (exec/alerts/) are the fired rows of `scores`, keyed by the same id: the simulator reads the
# `scores` table and runs after `alerts`, so every alert has its trade when the alert exists.
ALERTS = dg.AssetKey("alerts")
CHECKS = {
    "every_alert": "Every fired signal (alert) of the timeframe has exactly one trade row, and every row an alert.",
    "exit_after_entry": "A filled trade enters after its signal bar and exits at or after its entry.",
    "stop_loss_side": "A filled trade's stop is below a long's entry and above a short's.",
}


def build_sim_assets(cfg: AppConfig) -> list[dg.AssetsDefinition]:
    @partitioned_asset(
        partitions_def=timeframe_partitions(),
        group=GROUP,
        deps=[dg.AssetDep(ALERTS)],
        checks=[check_spec("sim_trades", name, text) for name, text in CHECKS.items()],
        description="Every alert traded on the audited 1h bars after its signal bar with its archetype's "
        "template (rotation: limit at the plan's entry; TD13: market or limit), stop before target when an "
        "hour cannot tell, fees, slippage and funding from the config: fills, exits, PnL in % and R, MFE/MAE. "
        "Also exported to <store>/exports/sim_trades_<tf>.csv.",
    )
    def sim_trades(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        summaries, found = {}, {name: {} for name in CHECKS}
        for tf in context.partition_keys:
            report = simulate_timeframe(cfg, store.store, tf)
            summaries[tf] = report.summary.reset_index().to_dict("records")
            for name, problems in sim_problems(store.store, tf).items():
                found[name][tf] = problems
            context.log.info(f"sim_trades {tf}: {len(report.trades)} trades, {exports_path(store.store, tf)}")
        return dg.MaterializeResult(
            metadata={"summary_by_timeframe": dg.MetadataValue.json(summaries)},
            check_results=[problems_check(f"sim_trades_{name}", found[name]) for name in CHECKS],
        )

    return [sim_trades]
