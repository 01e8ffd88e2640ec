"""The layout's rules, checked on the source (docs/architecture.md): imports only point down the data's
path, Dagster lives only in `defs/` and `definitions.py`, and nothing imports `definitions.py`."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "apex_rotation"
# Lowest first; a module may import its own layer and the layers before it, never a later one.
LAYERS = [
    {"timeframes", "bars", "rules", "log", "config", "schemas", "retry", "parallel"},
    {"ingest"},
    {"store"},
    {"features"},
    {"signals"},
    {"exec"},
    {"research"},
    {"summary"},
    {"defs", "definitions", "cli"},  # the entry points: the CLI launches the Dagster runs
]


def _layer(module: str) -> int:
    """The layer of `apex_rotation.<top>…` by its first component below the package."""
    top = module.split(".")[1] if module.count(".") else module
    return next(i for i, names in enumerate(LAYERS) if top in names)


def _imports() -> list[tuple[str, str]]:
    """(importing module, imported module) for every import in the package, lazy imports included."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((module, node.module))
            elif isinstance(node, ast.Import):
                found += [(module, alias.name) for alias in node.names]
    return found


def test_imports_only_point_down_the_data_path():
    upward = [
        f"{src} imports {dst}"
        for src, dst in _imports()
        if src.count(".") and dst.startswith("apex_rotation.") and _layer(dst) > _layer(src)
    ]
    assert upward == []


def test_dagster_only_in_the_dagster_layer_and_nothing_imports_definitions():
    dagster_users = {
        src
        for src, dst in _imports()
        if dst.split(".")[0] in ("dagster", "dagster_duckdb", "dagster_pandera")
    }
    assert dagster_users and all(
        src.startswith(("apex_rotation.defs", "apex_rotation.definitions")) for src in dagster_users
    )
    mentions = sorted(
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "dagster" in p.read_text()
    )  # what `grep -rl dagster apex_rotation` lists
    assert all(m.startswith("defs/") or m == "definitions.py" for m in mentions), mentions
    assert [src for src, dst in _imports() if dst == "apex_rotation.definitions"] == []


def test_private_dagster_modules_only_in_the_batched_event_log():
    """No `dagster._…` import except the batched sqlite event log, the one documented exception (README,
    "One instance"): Dagster has no public batched sqlite storage; `test_event_log.py` pins its behaviour."""
    private = sorted({src for src, dst in _imports() if dst.startswith("dagster._")})
    assert private == ["apex_rotation.defs.event_log"]


def test_features_and_signals_read_names_from_the_catalog_not_the_refresher():
    offenders = [
        src
        for src, dst in _imports()
        if src.startswith(("apex_rotation.features", "apex_rotation.signals"))
        and dst == "apex_rotation.store.refresh"
    ]
    assert offenders == []
