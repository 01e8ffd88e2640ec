"""Compare two Parquet stores file by file: byte-identical, or how they differ (data vs file metadata).

A restructuring must leave what `apex run` writes unchanged; run the main job into two stores (before and
after the change) and compare them:

    APEX_DATA_DIR=/tmp/before uv run apex run      # on the old commit
    APEX_DATA_DIR=/tmp/after  uv run apex run      # on the new one
    uv run python scripts/compare_stores.py /tmp/before /tmp/after

Exit 0 when every Parquet file in both stores is byte-identical; else 1, with one line per difference.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

META_KEY = b"apex_rotation.meta"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def explain(a: Path, b: Path) -> str:
    """Why two same-named files differ: the rows/columns, or only the project's file metadata (which keys)."""
    ta, tb = pq.read_table(a), pq.read_table(b)
    if not ta.drop_columns([]).equals(tb) or ta.schema.remove_metadata() != tb.schema.remove_metadata():
        return "data differ"
    ma = json.loads((ta.schema.metadata or {}).get(META_KEY, b"{}"))
    mb = json.loads((tb.schema.metadata or {}).get(META_KEY, b"{}"))
    keys = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))
    if keys:
        return f"data identical; file metadata differs in {keys}"
    if ta.schema.metadata == tb.schema.metadata:
        return "data and metadata identical; only the Parquet encoding differs"
    return "data identical; other metadata differs"


def compare(before: Path, after: Path) -> list[str]:
    files_a = {p.relative_to(before) for p in before.rglob("*.parquet")}
    files_b = {p.relative_to(after) for p in after.rglob("*.parquet")}
    lines = [f"only in {before}: {p}" for p in sorted(files_a - files_b)]
    lines += [f"only in {after}: {p}" for p in sorted(files_b - files_a)]
    same = 0
    for rel in sorted(files_a & files_b):
        if digest(before / rel) == digest(after / rel):
            same += 1
        else:
            lines.append(f"differs: {rel}: {explain(before / rel, after / rel)}")
    print(f"{same} of {len(files_a | files_b)} Parquet files byte-identical")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: compare_stores.py BEFORE_STORE AFTER_STORE", file=sys.stderr)
        return 2
    lines = compare(Path(argv[0]), Path(argv[1]))
    print("\n".join(lines))
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
