"""`sim_trades`: the dry-run trade of every alert, one partition per timeframe."""

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.declare import check_spec, partitioned_asset, problems_check
from apex_rotation.defs.incremental import timeframe_step
from apex_rotation.defs.metadata import basket_metadata, stored_rows
from apex_rotation.defs.partitions import timeframe_partitions
from apex_rotation.defs.resources import StoreResource
from apex_rotation.exec.sim import exports_path, sim_problems, simulate_timeframe
from apex_rotation.store.tables import BASKET_KEY, SIM_TRADES

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
        automation_condition=dg.AutomationCondition.eager(),
        deps=[dg.AssetDep(ALERTS)],
        checks=[check_spec("sim_trades", name, text) for name, text in CHECKS.items()],
        description="Every alert traded on the audited 1h bars after its signal bar with its archetype's "
        "template (rotation: limit at the plan's entry; TD13: market or limit), stop before target when an "
        "hour cannot tell, fees, slippage and funding from the config: fills, exits, PnL in % and R, MFE/MAE. "
        "Also exported to <store>/exports/sim_trades_<tf>.csv.",
    )
    def sim_trades(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        st, tfs = store.store, context.partition_keys

        def simulate(tf: str):  # may run in a worker process: returns what the run log says
            sim = simulate_timeframe(cfg, st, tf)
            problems = {name: found for name, found in sim_problems(st, tf).items() if found}
            return sim.summary.reset_index().to_dict("records"), problems

        report = timeframe_step(
            st, cfg, "sim_trades", tfs, compute=simulate, may_skip=lambda tf: exports_path(st, tf).exists()
        )
        for tf in report.computed:
            trades = stored_rows(st, SIM_TRADES, [(BASKET_KEY, tf)])[f"{BASKET_KEY}|{tf}"]
            context.log.info(f"sim_trades {tf}: {trades} trades, {exports_path(st, tf)}")
        report.say(context.log, "sim_trades")
        found = {name: {tf: p[name] for tf, p in report.problems.items() if name in p} for name in CHECKS}
        return dg.MaterializeResult(
            metadata={
                "summary_by_timeframe": dg.MetadataValue.json(report.summaries),
                **report.metadata(),
                **basket_metadata(st, SIM_TRADES, tfs),
                "exports": dg.MetadataValue.json({tf: str(exports_path(st, tf)) for tf in tfs}),
            },
            check_results=[problems_check(f"sim_trades_{name}", found[name]) for name in CHECKS],
        )

    return [sim_trades]
