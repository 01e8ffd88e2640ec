"""Incremental steps: a partition whose inputs did not change since it was last computed is skipped.

Why store fingerprints and not Dagster data versions: every step here computes many partitions in one run
(single-run backfill policy), writes through the Parquet store and returns no value, so Dagster sees one
output for the whole step; its data versions are per output, not per partition of a multi-partition step,
and they would not notice a file changed or removed behind Dagster's back. The store itself knows exactly
what a partition was computed from, so each computed partition gets a small record beside the store:

    <store>/.fingerprints/<asset>/<timeframe>/<key>.json
        {"code": <digest of the package source and the config>, "extra": {...},
         "inputs":  {<file>: [size, mtime_ns, content digest] or null when absent},
         "outputs": {<file>: [size, mtime_ns]}}

A partition is skipped only when the code/config digest and `extra` are the same, every output is still
there untouched (same size and mtime), and every input has the same content: an input whose size/mtime
changed is hashed and compared by content, so a file rewritten with identical bytes (the 4h bars resampled
again from an unchanged 1h base) does not cascade. A record is written only after the partition was
computed and passed its checks, so a skip carries over a passed check, never a failed one. Deleting
`.fingerprints/` (or any record) forces a recompute; nothing else reads these files.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from apex_rotation.config import AppConfig
from apex_rotation.parallel import map_partitions
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import (
    ALERTS,
    BASKET_KEY,
    BASKET_PROFILE,
    CONFIRMATIONS,
    ROTATION_CANDIDATES,
    SCANNER_QUALITY,
    SCORES,
    SIM_TRADES,
)

FINGERPRINTS_DIR = ".fingerprints"
PACKAGE = Path(__file__).resolve().parents[1]


@cache
def _source_digest() -> str:
    """The package's source (every module): a code change recomputes everything."""
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(PACKAGE.rglob("*.py")):
        h.update(str(path.relative_to(PACKAGE)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def code_version(cfg: AppConfig) -> str:
    """The package source and every knob of the config."""
    h = hashlib.blake2b(digest_size=16)
    h.update(_source_digest().encode())
    h.update(cfg.model_dump_json().encode())
    return h.hexdigest()


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


# Content digests by (file, size, mtime_ns), shared by every step of the process: each file is hashed once
# per version (a cold run hashes the store once, a warm one hashes nothing).
_DIGESTS: dict[tuple[str, int, int], str] = {}


def _content(path: Path, stat: tuple[int, int]) -> str:
    key = (str(path), *stat)
    if key not in _DIGESTS:
        if len(_DIGESTS) > 50_000:  # a long-lived code server: forget old versions
            _DIGESTS.clear()
        h = hashlib.sha256()  # with the CPU SHA instructions (x86 since 2017-19, ARMv8): 2x blake2b
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()[:32]
    return _DIGESTS[key]


class Fingerprints:
    """The fingerprint records of one asset in one store (see the module docstring)."""

    def __init__(self, store: ParquetStore, asset: str, cfg: AppConfig):
        self.store, self.asset, self.code = store, asset, code_version(cfg)

    def _record_path(self, timeframe: str, key: str) -> Path:
        return self.store.root / FINGERPRINTS_DIR / self.asset / timeframe / f"{key}.json"

    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.store.root))

    def _inputs(self, inputs: Iterable[Path], known: Mapping[str, list] | None = None) -> dict:
        """Each input's [size, mtime_ns, digest] (null when absent); a digest is reused from `known` when
        the file's size and mtime did not change, else the file is hashed."""
        out: dict[str, list | None] = {}
        for path in sorted(set(inputs)):
            rel, stat = self._rel(path), _stat(path)
            if stat is None:
                out[rel] = None
                continue
            old = (known or {}).get(rel)
            digest = old[2] if old and tuple(old[:2]) == stat else _content(path, stat)
            out[rel] = [*stat, digest]
        return out

    def unchanged(
        self,
        timeframe: str,
        key: str,
        inputs: Iterable[Path],
        outputs: Iterable[Path],
        extra: dict | None = None,
    ) -> bool:
        """True when the partition was computed from exactly these inputs by this code and config, and its
        outputs are still as it left them."""
        path = self._record_path(timeframe, key)
        try:
            record = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return False
        if record.get("code") != self.code or record.get("extra") != (extra or {}):
            return False
        if any(
            record.get("outputs", {}).get(self._rel(p)) != list(_stat(p) or ()) or _stat(p) is None
            for p in outputs
        ):
            return False
        known = record.get("inputs", {})
        now = self._inputs(inputs, known)
        if set(now) != set(known):
            return False
        if any((now[k] or [None] * 3)[2] != (known[k] or [None] * 3)[2] for k in now):
            return False
        if any(now[k] != known[k] for k in now):  # same bytes, new file: remember its stat
            self._write(path, {**record, "inputs": now})
        return True

    def record(
        self,
        timeframe: str,
        key: str,
        inputs: Iterable[Path],
        outputs: Iterable[Path],
        extra: dict | None = None,
    ) -> None:
        """Remember what the partition was just computed from (call it only after its checks passed)."""
        record = {
            "code": self.code,
            "extra": extra or {},
            "inputs": self._inputs(inputs),
            "outputs": {self._rel(p): list(_stat(p) or ()) for p in outputs},
        }
        self._write(self._record_path(timeframe, key), record)

    def recorded_at(self, timeframe: str, key: str) -> float | None:
        """When the partition was last computed (its record's mtime), None when it has no record."""
        stat = _stat(self._record_path(timeframe, key))
        return None if stat is None else stat[1] / 1e9

    def forget(self, timeframe: str, key: str) -> None:
        self._record_path(timeframe, key).unlink(missing_ok=True)

    @staticmethod
    def _write(path: Path, record: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
        os.replace(tmp, path)


def table_files(store: ParquetStore, tables: Iterable[str]) -> list[Path]:
    """Every partition file of the given tables (all timeframes): a cross-symbol step's inputs."""
    files: list[Path] = []
    for table in tables:
        files.extend((store.root / table).glob("*/*.parquet"))
    return files


# What every cross-symbol (per-timeframe) step may read besides the signal tables upstream of it.
DATA_TABLES = ("audited_bars", "features", "td_state", "funding", "open_interest", "ground_truth")

# Each per-timeframe step: the signal tables it reads (besides DATA_TABLES) and the tables it writes. The
# assets and the pre-launch check (defs/prelaunch.py) both read them from here.
TIMEFRAME_STEPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "rotation_candidates": ((), (ROTATION_CANDIDATES.name, BASKET_PROFILE.name)),
    "confirmations": ((ROTATION_CANDIDATES.name,), (CONFIRMATIONS.name,)),
    "scanner_quality": ((ROTATION_CANDIDATES.name,), (SCANNER_QUALITY.name,)),
    "scores": ((ROTATION_CANDIDATES.name, CONFIRMATIONS.name), (SCORES.name,)),
    "alerts": ((ROTATION_CANDIDATES.name, CONFIRMATIONS.name, SCORES.name), (ALERTS.name,)),
    "sim_trades": (
        (ROTATION_CANDIDATES.name, CONFIRMATIONS.name, SCORES.name, ALERTS.name),
        (SIM_TRADES.name,),
    ),
}


def timeframe_inputs(
    store: ParquetStore, asset: str, timeframe: str, data: list[Path] | None = None
) -> list[Path]:
    """What a per-timeframe step reads for `timeframe`: every file of DATA_TABLES (any timeframe: scores
    read the TD state of td.htf and td.ltf; `data` when already listed) and its signal tables' partition of
    that timeframe (each stage reads only its own timeframe's signal tables, so the timeframes of one run
    never depend on each other)."""
    signal = [store.path(table, timeframe, BASKET_KEY) for table in TIMEFRAME_STEPS[asset][0]]
    return [*(table_files(store, DATA_TABLES) if data is None else data), *signal]


def timeframe_outputs(store: ParquetStore, asset: str, timeframe: str) -> list[Path]:
    return [store.path(table, timeframe, BASKET_KEY) for table in TIMEFRAME_STEPS[asset][1]]


@dataclass
class StepReport:
    """What an incremental step did: per asked partition its summary (or "unchanged"), the problems of
    the partitions it computed, and how many it computed and skipped."""

    summaries: dict = field(default_factory=dict)
    problems: dict = field(default_factory=dict)
    computed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def metadata(self) -> dict:
        return {"computed": len(self.computed), "unchanged": len(self.unchanged)}

    def say(self, log, asset: str) -> None:
        log.info(
            f"{asset}: computed {len(self.computed)}, unchanged {len(self.unchanged)} (inputs as when last "
            f"computed: skipped){': ' + ', '.join(self.unchanged) if self.unchanged else ''}"
        )


def timeframe_step(
    store: ParquetStore,
    cfg: AppConfig,
    asset: str,
    timeframes: Iterable[str],
    *,
    compute: Callable[[str], tuple[object, object]],
    may_skip: Callable[[str], bool] | None = None,
    parallel: bool = True,
) -> StepReport:
    """Run `compute(tf) -> (summary, problems)` for every asked timeframe whose inputs (TIMEFRAME_STEPS)
    changed since it was computed; skip the others. `may_skip(tf)` can veto a skip (alerts: an outbox row
    still to deliver). The timeframes are independent and computed a few at once, possibly in worker
    processes (apex_rotation/parallel.py): `compute` may only write its own tables and return its result.
    One that does more (sends alerts, logs through Dagster's context) passes `parallel=False`."""
    fp = Fingerprints(store, asset, cfg)
    data = table_files(store, DATA_TABLES)  # listed once for every timeframe
    report = StepReport()
    stale = []
    for tf in timeframes:
        inputs = timeframe_inputs(store, asset, tf, data)
        if fp.unchanged(tf, BASKET_KEY, inputs, timeframe_outputs(store, asset, tf)) and (
            may_skip is None or may_skip(tf)
        ):
            report.summaries[tf] = "unchanged"
            report.unchanged.append(tf)
        else:
            stale.append(tf)
    results = map_partitions(compute, stale) if parallel else [compute(tf) for tf in stale]
    for tf, (summary, found) in zip(stale, results, strict=True):
        report.summaries[tf] = summary
        report.computed.append(tf)
        if found:
            report.problems[tf] = found
            fp.forget(tf, BASKET_KEY)
        else:
            fp.record(
                tf, BASKET_KEY, timeframe_inputs(store, asset, tf, data), timeframe_outputs(store, asset, tf)
            )
    return report


@dataclass(frozen=True)
class Stage:
    """One per-timeframe store stage of a chain: `compute(tf) -> (summary, problems)`; a `blocking` stage's
    problems stop the later stages of that timeframe that read its tables (TIMEFRAME_STEPS), directly or
    through another, as a blocking Dagster check stops the steps downstream of it."""

    asset: str
    compute: Callable[[str], tuple[object, object]]
    blocking: bool = True


def timeframe_chain(
    store: ParquetStore, cfg: AppConfig, stages: list[Stage], timeframes: Iterable[str]
) -> dict[str, StepReport]:
    """Run the `stages` in order for each asked timeframe, one task per timeframe (possibly a worker
    process, apex_rotation/parallel.py), skipping a stage whose inputs did not change (TIMEFRAME_STEPS);
    returns each stage's report.

    Why one task per timeframe and not one step per stage: the 4h scores alone outlast the other
    timeframes' whole chains, so with a step per stage one core idled through most of every step. A stage
    that reads what a blocking stage failed (directly or through another) is not computed for that
    timeframe, and its report says so as a problem there (so its own check fails and blocks what reads it).
    Fingerprints are checked in the task, after the stages before it wrote (their output is its input), and
    recorded after every task ended, on the files as they were left."""
    timeframes = list(timeframes)
    if not stages:
        return {}
    prints = {stage.asset: Fingerprints(store, stage.asset, cfg) for stage in stages}
    data = table_files(store, DATA_TABLES)  # listed once: these stages never write them

    def unchanged(stage: Stage, tf: str) -> bool:
        inputs = timeframe_inputs(store, stage.asset, tf, data)
        return prints[stage.asset].unchanged(
            tf, BASKET_KEY, inputs, timeframe_outputs(store, stage.asset, tf)
        )

    # the first stage's check, here: it hashes the data files that changed once, and the worker processes
    # inherit those digests (the later stages read the same data files besides their own timeframe's tables)
    first = {tf: unchanged(stages[0], tf) for tf in timeframes}

    def chain(tf: str) -> list[tuple[str, object, object]]:
        done: list[tuple[str, object, object]] = []  # (how, summary, problems) per stage
        stale: dict[str, str] = {}  # table → why it is not to be read (a blocking failure upstream)
        for i, stage in enumerate(stages):
            reads, writes = TIMEFRAME_STEPS[stage.asset]
            why = next((stale[table] for table in reads if table in stale), None)
            if why is not None:  # what it reads failed its check: stopped, and so is what reads it
                done.append(("stopped", "not computed", [f"not computed: {why}"]))
                stale.update(dict.fromkeys(writes, why))
            elif first[tf] if i == 0 else unchanged(stage, tf):
                done.append(("unchanged", "unchanged", None))
            else:
                summary, found = stage.compute(tf)
                done.append(("computed", summary, found))
                if found and stage.blocking:
                    stale.update(dict.fromkeys(writes, f"{stage.asset} {tf} failed its check"))
        return done

    reports = {stage.asset: StepReport() for stage in stages}
    for tf, done in zip(timeframes, map_partitions(chain, timeframes), strict=True):
        for stage, (how, summary, found) in zip(stages, done, strict=True):
            report, fp = reports[stage.asset], prints[stage.asset]
            report.summaries[tf] = summary
            if how == "unchanged":
                report.unchanged.append(tf)
                continue
            if how == "computed":  # not one a failure before it stopped
                report.computed.append(tf)
            if found:
                report.problems[tf] = found
                fp.forget(tf, BASKET_KEY)
            else:
                inputs = timeframe_inputs(store, stage.asset, tf, data)
                fp.record(tf, BASKET_KEY, inputs, timeframe_outputs(store, stage.asset, tf))
    return reports


@dataclass
class SymbolStep:
    """The fingerprints of a per-symbol step: what partition (symbol, tf) reads, writes, and depends on
    besides its files (`extra`, e.g. the clock an audit counts stale bars against)."""

    fingerprints: Fingerprints
    inputs: Callable[[str, str], list[Path]]
    output: Callable[[str, str], Path]
    extra: Callable[[str, str], dict | None] = lambda symbol, tf: None

    def split(self, pairs: Iterable[tuple[str, str]]) -> tuple[list[tuple[str, str]], StepReport]:
        """The partitions to compute (their inputs changed) and the report naming the unchanged ones."""
        stale, report = [], StepReport()
        for symbol, tf in pairs:
            args = (self.inputs(symbol, tf), [self.output(symbol, tf)], self.extra(symbol, tf))
            if self.fingerprints.unchanged(tf, symbol, *args):
                report.unchanged.append(f"{symbol}|{tf}")
            else:
                stale.append((symbol, tf))
                report.computed.append(f"{symbol}|{tf}")
        return stale, report

    def all_unchanged(self, pairs: Iterable[tuple[str, str]]) -> bool:
        """True when no partition of `pairs` would be computed (stops at the first that would)."""
        return all(
            self.fingerprints.unchanged(
                tf, symbol, self.inputs(symbol, tf), [self.output(symbol, tf)], self.extra(symbol, tf)
            )
            for symbol, tf in pairs
        )

    def record(self, computed: Iterable[tuple[str, str]], problems: Mapping[str, object]) -> None:
        """Remember the computed partitions that passed their checks (`problems` keyed `symbol|tf`)."""
        for symbol, tf in computed:
            if f"{symbol}|{tf}" in problems:
                self.fingerprints.forget(tf, symbol)
            else:
                args = (self.inputs(symbol, tf), [self.output(symbol, tf)], self.extra(symbol, tf))
                self.fingerprints.record(tf, symbol, *args)
