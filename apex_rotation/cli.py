"""The `apex` command line: `apex refresh`, `apex audit` (and `uv run refresh` for `apex refresh`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from apex_rotation import log as logsetup
from apex_rotation.config import DATA_DIR_ENV, AppConfig, ConfigError, load_config
from apex_rotation.ingest.base import SourceError
from apex_rotation.ingest.registry import SOURCE_NAMES, make_perps_source, make_source
from apex_rotation.store.audit_report import audit_report_path
from apex_rotation.store.parquet import ParquetStore, StoreError
from apex_rotation.store.refresh import RefreshSummary, StoreRefresher, audit_store
from apex_rotation.timeframes import TIMEFRAMES


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config (default: $APEX_CONFIG or configs/default.yaml)")
    parser.add_argument("--store", help=f"store root (default: ${DATA_DIR_ENV} or store.root in the config)")
    parser.add_argument("--symbols", help="comma-separated basket subset, e.g. BTC,ETH,SOL")
    parser.add_argument("--timeframes", default=",".join(TIMEFRAMES), help="comma-separated (default: all)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apex", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    refresh = sub.add_parser("refresh", help="fill the store from a source, resample, audit")
    _common(refresh)
    refresh.add_argument("--source", choices=SOURCE_NAMES, help="default: data_sources.default_source")
    refresh.add_argument("--data-dir", help="folder of feather / Binance CSV files (for --source files)")
    refresh.add_argument("--quiet", action="store_true", help="no progress bar")
    run = sub.add_parser("run", help="the main job: refresh and materialize every asset, then summarise")
    run.add_argument("--config", help="YAML config (default: $APEX_CONFIG or configs/default.yaml)")
    run.add_argument("--store", help=f"store root (default: ${DATA_DIR_ENV} or store.root in the config)")
    run.add_argument("--source", choices=SOURCE_NAMES, help="default: data_sources.default_source")
    run.add_argument("--data-dir", help="folder of feather / Binance CSV files (for --source files)")
    run.add_argument("--latest", type=int, default=5, help="candidates to show per timeframe (default 5)")
    audit = sub.add_parser("audit", help="audit the stored bars per symbol/timeframe")
    _common(audit)
    audit.add_argument("--json", action="store_true", help="print the machine-readable report")
    return parser


def _setup(args: argparse.Namespace) -> tuple[AppConfig, ParquetStore, list[str], list[str]]:
    cfg = load_config(args.config)
    logsetup.configure(cfg.logging.format, cfg.logging.level, secrets=cfg.secrets().values())
    root = Path(args.store) if args.store else cfg.data_root()
    symbols = cfg.basket.names
    if args.symbols:
        asked = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
        unknown = [s for s in asked if s not in symbols]
        if unknown:
            raise ConfigError(f"--symbols {unknown} are not in the basket {symbols}")
        symbols = asked
    timeframes = [t.strip() for t in args.timeframes.split(",") if t.strip()]
    bad = [t for t in timeframes if t not in TIMEFRAMES]
    if bad:
        raise ConfigError(f"--timeframes {bad} unknown; expected some of {list(TIMEFRAMES)}")
    return cfg, ParquetStore(root), symbols, timeframes


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
        lines.append(f"{symbol:<8} FAILED: {error}")
    return "\n".join(lines)


def cmd_refresh(args: argparse.Namespace) -> int:
    cfg, store, symbols, timeframes = _setup(args)
    source = make_source(cfg, args.source, data_dir=args.data_dir)
    perps = make_perps_source(cfg, source)
    started = time.perf_counter()
    progress = ProgressBar(len(symbols), enabled=not args.quiet and sys.stderr.isatty())
    with StoreRefresher(cfg, store, source, perps_source=perps) as refresher:
        summary = refresher.refresh_all(symbols, timeframes, progress=progress)
    print(logsetup.redact(format_table(summary, timeframes)))
    print(
        f"\nsource={source.name} symbols={len(symbols)} store={store.root} "
        f"report={audit_report_path(store.root)} took={time.perf_counter() - started:.1f}s"
    )
    return 0 if summary.ok else 1


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
        f"{'symbol':<8}{'tf':>4}{'rows':>8}{'expected':>10}{'missing':>9}{'dups':>6}{'zero_vol':>10}{'first':>27}"
    )
    for r in reports:
        print(
            f"{r.symbol:<8}{r.timeframe:>4}{r.rows:>8}{r.expected:>10}{r.missing:>9}{r.duplicates:>6}"
            f"{r.zero_volume:>10}{r.first or '-':>27}"
        )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from apex_rotation.defs.runner import run_pipeline  # Dagster is imported only for this command
    from apex_rotation.summary import run_summary

    cfg = load_config(args.config)
    logsetup.configure(cfg.logging.format, "WARNING", secrets=cfg.secrets().values())
    root = Path(args.store) if args.store else cfg.data_root()
    started = time.perf_counter()
    result = run_pipeline(cfg, store_root=str(root), source=args.source, data_dir=args.data_dir)
    if not result.success:
        print(
            "WARNING: the pipeline failed; what follows may be stale (see the errors above)", file=sys.stderr
        )
    print(run_summary(ParquetStore(root), latest=args.latest))
    print(f"\nruns={','.join(result.run_ids)} took={time.perf_counter() - started:.1f}s")
    if result.failed_checks:
        print(f"failed checks: {', '.join(result.failed_checks)}", file=sys.stderr)
    return 0 if result.success and not result.failed_checks else 1


COMMANDS = {"refresh": cmd_refresh, "audit": cmd_audit, "run": cmd_run}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, SourceError, StoreError) as exc:  # config, bad input, unreachable source, empty store
        print(f"apex {args.command}: {logsetup.redact(str(exc))}", file=sys.stderr)
        return 2


def refresh_main() -> int:
    """`uv run refresh …` is `apex refresh …`."""
    return main(["refresh", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
