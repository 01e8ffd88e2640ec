"""`reports/audit.json`: the audit reports of every stored partition in one file a user can read or `jq`.

Each `audited_bars` partition file carries its own report in its metadata, so the JSON is rebuilt from the
partitions (concurrent runs cannot lose each other's entries) and written atomically. The file depends on
the stored bars only, never on the clock: `apex refresh`, `apex run` and `apex audit` write the same file for
the same store (`AuditReport` leaves `stale_bars` out of its dumps; entries written before that are
stripped of it here).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from apex_rotation.store.audit import AuditReport
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import AUDITED_BARS
from apex_rotation.timeframes import TIMEFRAMES

REPORTS_DIR = "reports"
AUDIT_REPORT_FILE = "audit.json"


def audit_report_path(root: str | Path) -> Path:
    return Path(root) / REPORTS_DIR / AUDIT_REPORT_FILE


def rebuild_audit_report(store: ParquetStore) -> Path:
    """Write `reports/audit.json` from the reports stored with every `audited_bars` partition.

    Each partition file carries its own report, so concurrent runs cannot lose each other's entries.
    """
    path = audit_report_path(store.root)
    reports = [store.meta(AUDITED_BARS, tf, symbol) for tf, symbol in store.partitions(AUDITED_BARS)]
    _write_reports(path, reports)
    return path


CLOCK_DEPENDENT = ("stale_bars",)  # in reports stored before it was left out of `AuditReport` dumps


def _write_reports(path: Path, reports: Sequence[dict]) -> None:
    clean = [{k: v for k, v in r.items() if k not in CLOCK_DEPENDENT} for r in reports]
    _write_json_atomic(path, sorted(clean, key=_report_order))


def _report_order(report: dict) -> tuple[str, int]:
    tf = report.get("timeframe")
    return report.get("symbol", ""), TIMEFRAMES.index(tf) if tf in TIMEFRAMES else len(TIMEFRAMES)


def _write_json_atomic(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(value, fh, indent=2)
    os.replace(tmp, path)


def write_audit_report(root: Path, reports: Sequence[AuditReport]) -> Path:
    """Update `reports/audit.json` with these reports (other symbols/timeframes already there are kept)."""
    path = audit_report_path(root)
    merged = {(r["symbol"], r["timeframe"]): r for r in _read_reports(path)}
    merged.update({(r.symbol, r.timeframe): r.model_dump(mode="json") for r in reports})
    _write_reports(path, list(merged.values()))
    return path


def _read_reports(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
