"""The `apex` command line: `apex run`, `refresh`, `audit`, `alerts`, `trades`, `backtest`, `lookahead`, `ui`
(`uv run refresh` = `apex refresh`).

Exit codes: 0 done (warnings, such as a WARN-severity check or a perps-venue outage, never change it);
1 the work ran and something failed (a symbol's bars, a step, an ERROR check); 2 refused before any work
(a bad flag, config, data folder or source), with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from apex_rotation import log as logsetup
from apex_rotation.config import DATA_DIR_ENV, AppConfig, ConfigError, load_config
from apex_rotation.ingest.base import MarketDataSource, SourceError
from apex_rotation.ingest.registry import SOURCE_NAMES, make_perps_source, make_source
from apex_rotation.store.audit_report import audit_report_path
from apex_rotation.store.parquet import ParquetStore, StoreError
from apex_rotation.store.refresh import RefreshSummary, StoreRefresher, audit_store
from apex_rotation.timeframes import TIMEFRAMES

FILES = "files"


def _store_and_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config (default: $APEX_CONFIG or configs/default.yaml)")
    parser.add_argument("--store", help=f"store root (default: ${DATA_DIR_ENV} or store.root in the config)")


def _selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--symbols", help="comma-separated basket subset, e.g. BTC,ETH,SOL")
    parser.add_argument("--timeframes", default=",".join(TIMEFRAMES), help="comma-separated (default: all)")


def _source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", choices=SOURCE_NAMES, help="default: data_sources.default_source")
    parser.add_argument(
        "--data-dir", help="folder of feather / Binance CSV files (required by --source files)"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop before any work when a basket symbol has no data at the source (default: leave it out "
        "of this run and say so)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apex", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="the main job: refresh and materialize every asset, then summarise")
    _store_and_config(run)
    _source(run)
    _selection(run)
    run.add_argument("--latest", type=int, default=5, help="candidates to show per timeframe (default 5)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines (one per asset step)")
    run.add_argument(
        "--force",
        action="store_true",
        help="launch every run even when the store says it would compute nothing (default: such a run is "
        "skipped, and the progress says so)",
    )
    refresh = sub.add_parser("refresh", help="fill the store from a source, resample, audit")
    _store_and_config(refresh)
    _source(refresh)
    _selection(refresh)
    refresh.add_argument("--quiet", action="store_true", help="no progress bar")
    alerts = sub.add_parser("alerts", help="one day's alerts with every reason, invalidation and chart")
    _store_and_config(alerts)
    alerts.add_argument("--day", help="UTC date YYYY-MM-DD (default: the latest day with alerts)")
    alerts.add_argument("--symbol", help="only this symbol")
    trades = sub.add_parser("trades", help="the dry-run trades, or one alert traced to its trade and PnL")
    _store_and_config(trades)
    trades.add_argument("--alert", help="an alert_id (from `apex run` or `apex alerts`)")
    trades.add_argument("--last", type=int, default=20, help="trades to list without --alert (default 20)")
    backtest = sub.add_parser(
        "backtest", help="walk-forward backtest with filter ablations, lift intervals, placebo and plot pack"
    )
    _research_args(backtest)
    backtest.add_argument("--out", help="folder of the CSVs and plots (default: <store>/research)")
    backtest.add_argument("--no-plots", action="store_true", help="CSVs and tables only")
    lookahead = sub.add_parser(
        "lookahead",
        help="recompute every signal asset on truncated histories and report any value that changes",
    )
    _research_args(lookahead)
    lookahead.add_argument(
        "--cuts", type=int, help="cut points per timeframe (default: research.lookahead_cuts)"
    )
    ui = sub.add_parser(
        "ui",
        help="the Dagster web UI and daemon (`dg dev`: schedules, automation, backfills) on this store and "
        "its instance",
    )
    _store_and_config(ui)
    ui.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    audit = sub.add_parser("audit", help="audit the stored bars per symbol/timeframe")
    _store_and_config(audit)
    _selection(audit)
    audit.add_argument("--json", action="store_true", help="print the machine-readable report")
    return parser


def _setup(
    args: argparse.Namespace, log_level: str | None = None
) -> tuple[AppConfig, ParquetStore, list[str], list[str]]:
    """Config, logging, store, and the asked symbols/timeframes (refused with one line when unknown)."""
    cfg = load_config(args.config)
    logsetup.configure(cfg.logging.format, log_level or cfg.logging.level, secrets=cfg.secrets().values())
    root = Path(args.store) if args.store else cfg.data_root()
    symbols = cfg.basket.names
    if args.symbols:
        asked = {s.strip().upper() for s in args.symbols.split(",") if s.strip()}
        unknown = sorted(asked - set(symbols))
        if unknown:
            raise ConfigError(f"--symbols {unknown} are not in the basket {symbols}")
        symbols = [s for s in symbols if s in asked]
    timeframes = [t.strip() for t in args.timeframes.split(",") if t.strip()]
    bad = [t for t in timeframes if t not in TIMEFRAMES]
    if bad or not timeframes:
        raise ConfigError(f"--timeframes {bad or args.timeframes!r}: expected some of {list(TIMEFRAMES)}")
    return cfg, ParquetStore(root), symbols, [t for t in TIMEFRAMES if t in timeframes]


@dataclass
class Preflight:
    """What a source can serve of the asked symbols: the symbols to work on and the ones left out."""

    source: MarketDataSource
    symbols: list[str]
    left_out: list[str]


def preflight(args: argparse.Namespace, cfg: AppConfig, symbols: list[str]) -> Preflight:
    """Check the source and the symbols before any work (ValueError: refused, one line).

    A files folder that lacks some basket symbols is a partial import: those symbols are left out of this
    run and reported (or refused with --strict). A live venue that does not list a basket symbol means the
    config is wrong: refused, naming the symbol.
    """
    name = args.source or cfg.data_sources.default_source
    if name == FILES and not args.data_dir:
        raise ConfigError("--source files needs --data-dir DIR (a folder of feather or Binance CSV files)")
    if args.data_dir and name != FILES:
        raise ConfigError(f"--data-dir is only read by --source files (the source is {name})")
    if args.data_dir and not Path(args.data_dir).is_dir():
        raise ConfigError(f"--data-dir {args.data_dir}: no such folder")
    source = make_source(cfg, name, data_dir=args.data_dir)
    missing = source.unlisted(symbols)
    if not missing:
        return Preflight(source, symbols, [])
    where = f"in {args.data_dir}" if name == FILES else f"at {source.name}"
    if name != FILES or args.strict:
        source.close()
        raise ConfigError(f"no data {where} for basket symbols {missing}")
    keep = [s for s in symbols if s not in missing]
    absent_apex = [a for a in cfg.basket.apex_assets if a in missing]
    if absent_apex:
        source.close()
        raise ConfigError(f"no data {where} for the apex assets {absent_apex}: every stage needs them")
    return Preflight(source, keep, missing)


def _basket_subset(cfg: AppConfig, symbols: Sequence[str]) -> AppConfig:
    """The config with its basket cut to `symbols` (basket order kept): the partitions of this run."""
    kept = [s for s in cfg.basket.symbols if s.symbol in symbols]
    return cfg.model_copy(update={"basket": cfg.basket.model_copy(update={"symbols": kept})})


class ProgressBar:
    """A one-line progress bar on stderr (only when it is a terminal or forced)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled, self.start = total, 0, enabled, time.perf_counter()

    def __call__(self, label: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        elapsed = time.perf_counter() - self.start
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(f"\r[{bar}] {self.done}/{self.total} {label:<6} {elapsed:5.1f}s")
        if self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def format_table(summary: RefreshSummary, timeframes: Sequence[str]) -> str:
    header = f"{'symbol':<8}" + "".join(f"{tf:>8}" for tf in timeframes) + f"{'new':>8}{'missing%':>10}"
    lines = [header, "-" * len(header)]
    missing = {(r.symbol, r.timeframe): r.missing_pct for r in summary.reports}
    for item in summary.symbols:
        worst = max((missing.get((item.symbol, tf), 0.0) for tf in timeframes), default=0.0)
        rows = "".join(f"{item.rows.get(tf, 0):>8}" for tf in timeframes)
        lines.append(f"{item.symbol:<8}{rows}{item.new_rows:>8}{worst:>10.3f}")
    for symbol, error in summary.errors.items():
        kind = "FAILED" if symbol in summary.bar_errors else "WARNING"
        lines.append(f"{symbol:<8} {kind}: {error}")
    return "\n".join(lines)


def _say_left_out(check: Preflight, data_dir: str | None) -> None:
    if check.left_out:
        print(
            f"left out of this run (no file in {data_dir}): {', '.join(check.left_out)}; "
            "--strict refuses instead",
            file=sys.stderr,
        )


def cmd_refresh(args: argparse.Namespace) -> int:
    cfg, store, symbols, timeframes = _setup(args)
    check = preflight(args, cfg, symbols)
    _say_left_out(check, args.data_dir)
    source = check.source
    perps = make_perps_source(cfg, source)
    started = time.perf_counter()
    progress = ProgressBar(len(check.symbols), enabled=not args.quiet and sys.stderr.isatty())
    with StoreRefresher(cfg, store, source, perps_source=perps) as refresher:
        summary = refresher.refresh_all(check.symbols, timeframes, progress=progress)
    print(logsetup.redact(format_table(summary, timeframes)))
    print(
        f"\nsource={source.name} symbols={len(check.symbols)} store={store.root} "
        f"report={audit_report_path(store.root)} took={time.perf_counter() - started:.1f}s"
    )
    return 1 if summary.bar_errors else 0


def cmd_audit(args: argparse.Namespace) -> int:
    cfg, store, symbols, timeframes = _setup(args)
    reports = audit_store(cfg, store, symbols, timeframes)
    if not reports:
        print(f"nothing stored under {store.root}: run `apex refresh` first", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in reports], indent=2))
        return 0
    print(
        f"{'symbol':<8}{'tf':>4}{'rows':>8}{'expected':>10}{'missing':>9}{'filled':>8}{'spikes':>8}{'wicks':>7}"
        f"{'dups':>6}{'zero_vol':>10}{'first':>27}"
    )
    for r in reports:
        print(
            f"{r.symbol:<8}{r.timeframe:>4}{r.rows:>8}{r.expected:>10}{r.missing:>9}{r.filled:>8}{r.spikes:>8}"
            f"{r.wicks:>7}{r.duplicates:>6}{r.zero_volume:>10}{r.first or '-':>27}"
        )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    cfg, store, symbols, timeframes = _setup(args, log_level="WARNING")
    check = preflight(args, cfg, symbols)
    check.source.close()  # the assets open their own; this one only answered the pre-flight
    _say_left_out(check, args.data_dir)
    absent_apex = [a for a in cfg.basket.apex_assets if a not in check.symbols]
    if absent_apex:
        raise ConfigError(f"--symbols must include the apex assets {absent_apex}: every stage needs them")

    from apex_rotation.defs.instance import instance_home
    from apex_rotation.defs.runner import print_step, run_pipeline  # Dagster only for this command
    from apex_rotation.summary import run_summary

    started = time.perf_counter()
    if not args.quiet:
        print(f"apex run: store {store.root}, Dagster instance {instance_home(store.root)}", file=sys.stderr)
    result = run_pipeline(
        _basket_subset(cfg, check.symbols),
        store_root=str(store.root),
        source=args.source,
        data_dir=args.data_dir,
        timeframes=timeframes,
        progress=None if args.quiet else print_step,
        notify=None if args.quiet else lambda message: print(f"  {message}", file=sys.stderr, flush=True),
        force=args.force,
    )
    if not result.success:
        print(
            "WARNING: the pipeline failed; what follows may be stale (see the errors above)", file=sys.stderr
        )
    print(run_summary(store, latest=args.latest, timeframes=timeframes, apex_asset=cfg.basket.apex_assets[0]))
    print(
        f"\nruns={','.join(result.run_ids) or 'none'} took={time.perf_counter() - started:.1f}s "
        f"(steps computing {result.compute_seconds:.1f}s of {result.seconds:.1f}s in Dagster)"
    )
    if result.warnings:
        print(f"warnings (checks of WARN severity): {', '.join(result.warnings)}", file=sys.stderr)
    if result.failed_checks:
        print(f"failed checks: {', '.join(result.failed_checks)}", file=sys.stderr)
    return 0 if result.success and not result.failed_checks else 1


def _store_only(args: argparse.Namespace) -> ParquetStore:
    cfg = load_config(args.config)
    logsetup.configure(cfg.logging.format, "WARNING", secrets=cfg.secrets().values())
    return ParquetStore(Path(args.store) if args.store else cfg.data_root())


def cmd_alerts(args: argparse.Namespace) -> int:
    from apex_rotation.summary import alerts_day

    if args.day:
        try:
            args.day = pd.Timestamp(args.day).strftime("%Y-%m-%d")
        except ValueError:
            raise ConfigError(f"--day {args.day!r}: expected a date such as 2025-12-31") from None
    print(alerts_day(_store_only(args), day=args.day, symbol=args.symbol))
    return 0


def cmd_trades(args: argparse.Namespace) -> int:
    from apex_rotation.summary import trades_report

    try:
        print(trades_report(_store_only(args), alert_id=args.alert, last=args.last))
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    return 0


def _research_args(parser: argparse.ArgumentParser) -> None:
    _store_and_config(parser)
    _source(parser)
    parser.add_argument("--symbols", help="comma-separated basket subset, e.g. BTC,ETH,SOL")
    parser.add_argument("--timeframes", help="signal timeframes (default: research.timeframes)")


def _research_setup(args: argparse.Namespace) -> tuple[AppConfig, ParquetStore, list[str]]:
    """Config, store and signal timeframes of `backtest` / `lookahead`; with --source, the store is
    refreshed from it first (as `apex refresh`), else it is read as it is."""
    timeframes = args.timeframes
    args.timeframes = ",".join(TIMEFRAMES)
    cfg, store, symbols, _ = _setup(args, log_level="WARNING")
    tfs = [t.strip() for t in (timeframes or ",".join(cfg.research.timeframes)).split(",") if t.strip()]
    if bad := [t for t in tfs if t not in TIMEFRAMES]:
        raise ConfigError(f"--timeframes {bad}: expected some of {list(TIMEFRAMES)}")
    if args.source or args.data_dir:
        check = preflight(args, cfg, symbols)
        _say_left_out(check, args.data_dir)
        symbols = check.symbols
        with StoreRefresher(cfg, store, check.source, perps_source=make_perps_source(cfg, check.source)) as r:
            summary = r.refresh_all(symbols, list(TIMEFRAMES))
        if summary.bar_errors:
            raise StoreError(f"refresh failed for {sorted(summary.bar_errors)}")
    if args.symbols or args.source:
        cfg = _basket_subset(cfg, symbols)
    return cfg, store, tfs


def cmd_backtest(args: argparse.Namespace) -> int:
    from apex_rotation.research.backtest import lift_markdown, picks_table, run_backtest, summary_table

    cfg, store, timeframes = _research_setup(args)
    started = time.perf_counter()
    result = run_backtest(
        cfg, store, out=args.out, timeframes=timeframes, plots=False if args.no_plots else None
    )
    print("Signals of the configured gates over the whole history:")
    print(result.counts.to_string(index=False))
    print("\nOut-of-sample summary (walk-forward, stitched test folds):")
    print(summary_table(result.summary))
    print("\nLift of each filter (full − filter off), bootstrap interval in brackets:")
    print(lift_markdown(result.lift))
    print(f"\n{picks_table(result.picks, cfg)}")
    files = " ".join(f"{k}={v}" for k, v in result.files.items())
    print(f"\n{files}\ntook={time.perf_counter() - started:.1f}s")
    return 0


def cmd_lookahead(args: argparse.Namespace) -> int:
    from apex_rotation.research.lookahead import analyse

    cfg, store, timeframes = _research_setup(args)
    changes, compared = analyse(cfg, store, timeframes, symbols=None, cuts=args.cuts)
    for change in changes:
        print(change.text())
    verdict = f"{len(changes)} value(s) changed" if changes else "no value changed: no lookahead"
    print(f"lookahead: {compared} values compared over {','.join(timeframes)}; {verdict}")
    return 1 if changes else 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Replace this process with `dg dev` (Ctrl-C reaches it directly), in the project folder (where
    `[tool.dg]` names the code location), on the store's instance with the Dagster tuning set."""
    cfg = load_config(args.config)  # a bad config is refused here, not in the code location later
    root = Path(args.store) if args.store else cfg.data_root()
    from apex_rotation.defs.instance import PROJECT, ui_environment

    env = ui_environment(root, config=args.config)
    dg_cli = Path(sys.executable).parent / "dg"
    print(
        f"apex ui: http://{args.host}:{args.port} (store {root}, instance {env['DAGSTER_HOME']})",
        file=sys.stderr,
        flush=True,
    )
    os.chdir(PROJECT)
    os.execve(dg_cli, [str(dg_cli), "dev", "--host", args.host, "--port", str(args.port)], env)
    return 0  # not reached


COMMANDS = {
    "ui": cmd_ui,
    "refresh": cmd_refresh,
    "audit": cmd_audit,
    "run": cmd_run,
    "alerts": cmd_alerts,
    "trades": cmd_trades,
    "backtest": cmd_backtest,
    "lookahead": cmd_lookahead,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, SourceError, StoreError) as exc:  # config, bad input, unreachable source, empty store
        print(f"apex {args.command}: {logsetup.redact(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `apex audit | head`: the reader has what it wanted; end quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot raise again
        return 0


def refresh_main() -> int:
    """`uv run refresh …` is `apex refresh …`."""
    return main(["refresh", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
