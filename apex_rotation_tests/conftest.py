from __future__ import annotations

from pathlib import Path

import pytest

from apex_rotation.config import AppConfig, load_config


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh store root, also exported as $APEX_DATA_DIR so every layer writes there."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("APEX_DATA_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def default_config() -> AppConfig:
    return load_config()


@pytest.fixture(autouse=True)
def temporary_dagster_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test records its Dagster runs in a temporary instance, never the project's `.dagster_home`."""
    home = tmp_path_factory.mktemp("dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home
