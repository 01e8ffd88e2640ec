"""Real local services for the end-to-end tests: a PostgreSQL cluster and `dg dev`, each on a free
127.0.0.1 port, started and stopped by the test (`.ci/setup-system.sh` installs Debian's packages)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def small_config(folder: Path, symbols: list[str], days: int) -> Path:
    """The default config on a smaller synthetic market (`symbols`, `days`), written to `folder`."""
    from apex_rotation.config import DEFAULT_CONFIG_PATH

    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["basket"]["symbols"] = symbols
    raw["synthetic"]["days"] = days
    path = folder / "small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextmanager
def postgres_server() -> Iterator[int]:
    """A throw-away cluster (trust auth, user `postgres`) on a free port; yields the port."""
    bindir = postgres_bin()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="apex-pg-", dir="/tmp"))
    data, port = folder / "data", free_port()
    if as_postgres:  # initdb refuses to run as root: the cluster belongs to Debian's postgres user
        shutil.chown(folder, "postgres")
    folder.chmod(0o755)
    run = lambda *args: subprocess.run([*as_postgres, *args], check=True, capture_output=True)  # noqa: E731
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(folder / "log"), "-w", "start")
        yield port
    finally:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


def graphql(port: int, query: str, variables: dict | None = None, timeout: float = 10) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


@contextmanager
def dagster_dev(home: Path, env: dict[str, str], deadline_s: float = 240) -> Iterator[int]:
    """`apex ui` (`dg dev`: webserver and daemon) on a free port with the instance in `home`; yields the
    port once the code location `apex_rotation` is loaded."""
    from apex_rotation.defs.instance import prepare_home

    prepare_home(home)  # the project's instance: the template and the batched event log
    port = free_port()
    proc = subprocess.Popen(  # `apex ui` is `dg dev` with the project's instance tuning
        [str(Path(sys.executable).parent / "apex"), "ui", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT,
        env={**os.environ, **env, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: stopped with SIGINT to the group
    )
    try:
        deadline, loaded = time.time() + deadline_s, False
        while time.time() < deadline and not loaded:
            time.sleep(1)
            assert proc.poll() is None, "dg dev exited"
            try:
                entries = graphql(port, LOCATIONS)["data"]["workspaceOrError"]["locationEntries"]
            except (OSError, KeyError, TypeError, ValueError):
                continue
            loaded = any(e["name"] == "apex_rotation" and e["loadStatus"] == "LOADED" for e in entries)
        assert loaded, "the code location apex_rotation did not load"
        yield port
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen, grace_s: float = 30) -> None:
    """Stop a server started with `start_new_session=True`: SIGINT to its group, SIGKILL after `grace_s`."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
