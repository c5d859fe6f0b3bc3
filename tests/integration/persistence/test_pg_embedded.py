"""The embedded server: shared by processes using one home, and never a hang after
a crash (issue point 4). Each test runs real subprocesses with a fresh home."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from directorate.persistence.embedded import resolve_dsn

pytestmark = pytest.mark.integration

PROBE = textwrap.dedent(
    """
    import json, sys, time
    import psycopg
    from directorate.persistence.embedded import resolve_dsn
    dsn = resolve_dsn()
    with psycopg.connect(dsn) as conn:
        started, database = conn.execute(
            "SELECT pg_postmaster_start_time()::text, current_database()").fetchone()
    print(json.dumps({"dsn": dsn, "started": started, "database": database}), flush=True)
    if sys.argv[1:] == ["linger"]:
        time.sleep(600)
    """
)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DIRECTORATE_DSN"}
    env["DIRECTORATE_HOME"] = str(home)
    return env


def _probe(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PROBE, *args],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _answer(process: subprocess.Popen[str], timeout: float = 30) -> dict[str, Any]:
    assert process.stdout is not None
    if process.args[-1] == "linger":  # type: ignore[index]
        line = process.stdout.readline()
    else:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err
        line = out
    return dict(json.loads(line))


def _postmaster_pid(home: Path) -> int:
    return int((home / "pgdata" / "postmaster.pid").read_text().splitlines()[0])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it is gone for every purpose that matters.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split(") ")[-1].startswith("Z")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A fresh DIRECTORATE_HOME whose server is shut down after the test."""
    path = tmp_path / "home"
    yield path
    pidfile = path / "pgdata" / "postmaster.pid"
    if pidfile.exists():
        pid = _postmaster_pid(path)
        try:
            os.kill(pid, signal.SIGINT)  # fast shutdown
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def test_dsn_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIRECTORATE_DSN", "postgresql:///from-env")
    assert resolve_dsn("postgresql:///explicit") == "postgresql:///explicit"
    assert resolve_dsn() == "postgresql:///from-env"


def test_processes_sharing_a_home_share_one_server(home: Path) -> None:
    probes = [_probe(home) for _ in range(3)]
    answers = [_answer(p) for p in probes]

    assert len({a["dsn"] for a in answers}) == 1
    assert len({a["started"] for a in answers}) == 1, "more than one server was started"
    assert {a["database"] for a in answers} == {"directorate"}
    assert str(home / "pgdata") in answers[0]["dsn"] or "host=" in answers[0]["dsn"]


def test_a_server_left_by_a_killed_process_is_reused_then_restarted_after_a_crash(
    home: Path,
) -> None:
    owner = _probe(home, "linger")
    first = _answer(owner)
    owner.kill()  # SIGKILL: no atexit, nothing cleaned up
    owner.wait(timeout=10)
    owner.communicate()  # closes its pipes

    reused = _answer(_probe(home), timeout=30)
    assert reused["started"] == first["started"], "the running server was not reused"

    postmaster = _postmaster_pid(home)
    os.kill(postmaster, signal.SIGKILL)  # the server itself dies; postmaster.pid stays
    deadline = time.monotonic() + 10
    while not _gone(postmaster) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (home / "pgdata" / "postmaster.pid").exists()

    begun = time.monotonic()
    restarted = _answer(_probe(home), timeout=30)
    print(f"restart after a crashed server took {time.monotonic() - begun:.2f} s")
    assert restarted["started"] != first["started"]
    assert restarted["dsn"] == first["dsn"]
