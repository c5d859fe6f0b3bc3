"""Driving the ``directorate`` command as a user does: real subprocesses, a real database."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "bin" / "directorate"
SCRIPTED_AGENT = REPO / "tests" / "agents" / "scripted_agent.py"


class Proc:
    """A running ``directorate`` process whose stdout lines are collected by a thread."""

    def __init__(self, popen: subprocess.Popen[str]) -> None:
        self.popen = popen
        self.lines: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._changed.notify_all()

    def wait_for_line(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for _, line in self.lines:
                    if text in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self.popen.poll() is not None and not self._reader.is_alive()
                ):
                    raise AssertionError(f"no line with {text!r}; got {self.text()!r}")
                self._changed.wait(min(remaining, 0.2))

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        code = self.popen.wait(timeout)
        self.close()
        return code

    def close(self) -> None:
        self._reader.join(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


class Terminal:
    """A process on a pseudo-terminal: what it draws is read, keys can be typed."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.popen = subprocess.Popen(
            argv, env={**env, "COLUMNS": "120", "LINES": "40"},
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        )
        os.close(slave)
        self.output = b""

    def read_until(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} on the terminal; got {self.text()[-3000:]!r}")
            self._read(0.1)
        return self.text()

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        code = self.popen.wait(max(0.1, deadline - time.monotonic()))
        while self._read(0.1):
            pass
        os.close(self.master)
        return code

    def text(self) -> str:
        return self.output.decode("utf-8", errors="replace")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the other side closed
            return False
        self.output += data
        return bool(data)


class Cli:
    def __init__(self, dsn: str, home: Path) -> None:
        self.dsn = dsn
        self.env = {
            **os.environ,
            "DIRECTORATE_DSN": dsn,
            "DIRECTORATE_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
        }
        self.procs: list[Proc] = []

    def __call__(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(BIN), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def on_terminal(self, *args: str) -> Terminal:
        """Run a command on a pseudo-terminal, as a person at a shell does."""
        return Terminal([sys.executable, str(BIN), *args], self.env)

    def spawn(self, *args: str, wrapper: tuple[str, ...] = ()) -> Proc:
        """``directorate ARGS`` running, its output collected; ``wrapper`` is a command
        line that execs the one it is given as its last arguments."""
        popen = subprocess.Popen(
            [*wrapper, sys.executable, str(BIN), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        proc = Proc(popen)
        self.procs.append(proc)
        return proc

    def daemon(self, *args: str, wrapper: tuple[str, ...] = ()) -> Proc:
        """``directorate daemon ARGS``, once it serves (its engine has recovered)."""
        proc = self.spawn("daemon", *args, wrapper=wrapper)
        proc.wait_for_line("waiting for commands")
        return proc

    def rows(self, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(query, params).fetchall()

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.kill()
                proc.popen.wait(10)
            proc.close()

    def directive(self, directive_id: str) -> dict[str, Any]:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(
                "SELECT status, total_cost_usd FROM directives WHERE id = %s", (directive_id,)
            ).fetchone()
        assert row is not None
        return {"status": row[0], "cost": row[1]}

    def event_types(self, directive_id: str) -> list[str]:
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                "SELECT event_type FROM directive_events WHERE directive_id = %s ORDER BY seq",
                (directive_id,),
            ).fetchall()
        return [row[0] for row in rows]

    def steps(self, directive_id: str) -> dict[str, tuple[str, int]]:
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                "SELECT s.name, s.status, s.attempt FROM chain_steps s"
                " JOIN directive_chains c ON c.id = s.chain_id"
                " WHERE c.directive_id = %s AND c.status = 'active'",
                (directive_id,),
            ).fetchall()
        return {name: (status, attempt) for name, status, attempt in rows}

    def wait_status(self, directive_id: str, statuses: set[str], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            status = str(self.directive(directive_id)["status"])
            if status in statuses:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"directive still {status} after {timeout} s")
            time.sleep(0.1)


def engine_of(daemon: Proc) -> str:
    """The engine id a daemon names in its first line."""
    found = re.search(r"engine ([0-9a-f-]{36})", daemon.wait_for_line("engine "))
    assert found is not None, daemon.text()
    return found.group(1)


def toml_string(value: str | Path) -> str:
    return json.dumps(str(value))


def scripted_directive(
    tmp_path: Path,
    *,
    steps: list[dict[str, Any]],
    script: dict[str, Any],
    autonomy: str = "full_auto",
    name: str = "directive.toml",
    check: str = f"{sys.executable} -c pass",
    settings: str = "",
) -> Path:
    """A directive file with explicit steps, run by the scripted agent; ``check`` is
    the one verifier command, ``settings`` extra top-level TOML lines."""
    work = tmp_path / "work"
    if not work.exists():
        make_repository(work)
    script_path = tmp_path / f"{name}.script.json"
    (tmp_path / "records").mkdir(exist_ok=True)
    script_path.write_text(json.dumps({"record_dir": str(tmp_path / "records"), **script}))
    lines = [
        'title = "Acceptance"',
        'goal = "Run the steps"',
        f'autonomy_level = "{autonomy}"',
        f"local_path = {toml_string(work)}",
        settings,
        "",
        "[agent]",
        f"command = [{toml_string(sys.executable)}, {toml_string(SCRIPTED_AGENT)}, "
        f"{toml_string(script_path)}]",
        "",
        "[verifiers]",
        "auto_detect = false",
        "[[verifiers.command]]",
        'name = "ok"',
        f"run = {toml_string(check)}",
        "",
    ]
    for step in steps:
        lines.append("[[steps]]")
        for key, value in step.items():
            lines.append(f"{key} = {json.dumps(value)}")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def make_repository(folder: Path) -> None:
    """A user's project: a git repository with one commit (steps get worktrees)."""
    folder.mkdir(parents=True)
    (folder / "README.md").write_text("a project\n")
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "start"]):
        subprocess.run([*git, *args], check=True, capture_output=True)


def env_table(env: dict[str, str]) -> str:
    """``env`` as a TOML inline table for a directive file's ``[agent]`` (PATH left
    to the engine, which puts its own Python first)."""
    body = ", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items() if k != "PATH")
    return f"env = {{ {body} }}"
