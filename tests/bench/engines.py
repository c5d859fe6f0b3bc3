"""Many-engine benchmark (by hand, not in CI): 1, 2 and 4 engines on one database.

    python tests/bench/engines.py [--dsn DSN] [--directives 40] [--engines 1 2 4] [--repeat 3]

Each engine is a process of its own (this file, run as ``--child DSN``: an engine
with instant in-process tasks and an always-green verifier, which takes directives
up and applies commands as a daemon does). The N drafts of a 4-step diamond
(a -> b, c -> d) are stored first, the engines started and ready, and then the
clock runs from queueing the N start commands (the engines share them out, each
start taking the directive's lease) until every directive has completed.

Prints, per engine count, the median over ``--repeat`` interleaved repetitions (1, 2,
4, 1, 2, 4, ...; each on a fresh database) of steps per second, its ratio to one
engine, and how busy the machine's CPUs were meanwhile (the engines' and, when it
runs here, the server's CPU time over elapsed time x CPUs); each repetition's line
also says when the last start command had been applied and how the directives were
shared out. Without --dsn it uses an embedded server in a temporary home.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import psycopg

from directorate.actors import (
    CallableRunner,
    DirectiveSpec,
    Engine,
    EngineConfig,
    StepSpec,
)
from directorate.actors.commands import issue_command
from directorate.persistence.migrate import migrate
from directorate.persistence.models import CommandType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents"))
from green import GreenVerifier
from scratch import scratch_database, scratch_server

STEPS = [
    StepSpec(name="a"),
    StepSpec(name="b", depends_on=["a"]),
    StepSpec(name="c", depends_on=["a"]),
    StepSpec(name="d", depends_on=["b", "c"]),
]
READY = "engine ready"


# --------------------------------------------------------------------------- the child


def child(dsn: str) -> None:
    """One engine until SIGTERM (or its stdin closing): it takes up the directives it
    is given by command, as a daemon does."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    engine = Engine.start(
        EngineConfig(
            dsn=dsn,
            runner=CallableRunner(lambda task, cancel: None),
            verifiers=[GreenVerifier()],
            verifier_config={"auto_detect": False},
            max_concurrent_tasks=32,
            max_concurrent_evaluations=16,
            log_dir=Path(tempfile.mkdtemp(prefix="directorate-bench-logs-")),
        )
    )
    try:
        print(f"{READY} {engine.engine_id}", flush=True)
        stop.wait()
    finally:
        engine.shutdown()


# --------------------------------------------------------------------------- one run


def spawn_engines(dsn: str, count: int) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", dsn],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith(READY):
            raise SystemExit(f"an engine did not start (exit {proc.wait()}): {line!r}")
    return procs


def stop_engines(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def run(server: str, engines: int, directives: int) -> dict[str, Any]:
    with scratch_database(server) as dsn:
        migrate(dsn)
        # The drafts, stored by an engine that drives nothing (as `directorate submit`).
        with Engine.start(EngineConfig(dsn=dsn, recover=False, commands=False)) as submitter:
            ids = [
                submitter.submit(
                    DirectiveSpec(
                        title=f"bench {i}", goal="bench", autonomy_level="full_auto", steps=STEPS
                    )
                )
                for i in range(directives)
            ]
            procs = spawn_engines(dsn, engines)
            try:
                engine_cpu = CpuClock(lambda: [psutil.Process(p.pid) for p in procs])
                server_cpu = CpuClock(server_processes(dsn))
                began = time.monotonic()
                for directive_id in ids:
                    issue_command(submitter.db, CommandType.START, directive_id, {"by": "bench"})
                statuses, all_started = wait_all_finished(dsn, directives, began)
                elapsed = time.monotonic() - began
                cpu = (engine_cpu.used(), server_cpu.used())
                shares = shared_out(dsn)
            finally:
                stop_engines(procs)
    if statuses != {"completed": directives}:
        raise SystemExit(f"{engines} engine(s): not all directives completed: {statuses}")
    return {
        "engines": engines,
        "seconds": elapsed,
        "steps_per_s": directives * len(STEPS) / elapsed,
        "shares": shares,
        "all_started_s": all_started,
        "engine_cpu_s": cpu[0],
        "server_cpu_s": cpu[1],
    }


class CpuClock:
    """The CPU time (user and system) of ``processes()`` since this was made: of the
    ones that were there then, since then; of the ones started meanwhile (a backend
    for a new connection), all of it. One that exits meanwhile counts for nothing
    (the engines exit only after the clock is read, the server's backends with them)."""

    def __init__(self, processes: Callable[[], list[psutil.Process]]) -> None:
        self._processes = processes
        self._start = {p.pid: self._read(p) for p in processes()}

    @staticmethod
    def _read(process: psutil.Process) -> float:
        try:
            times = process.cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)

    def used(self) -> float | None:
        now = self._processes()
        if not now:
            return None
        return sum(self._read(p) - self._start.get(p.pid, 0.0) for p in now)


def server_processes(dsn: str) -> Callable[[], list[psutil.Process]]:
    """The PostgreSQL server's processes, its postmaster and every child, when it
    runs on this machine (else none)."""
    try:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT current_setting('data_directory')").fetchone()
        assert row is not None
        postmaster = psutil.Process(int((Path(row[0]) / "postmaster.pid").read_text().split()[0]))
    except (psycopg.Error, OSError, ValueError, IndexError, psutil.Error):
        return list

    def processes() -> list[psutil.Process]:
        try:
            return [postmaster, *postmaster.children(recursive=True)]
        except psutil.Error:
            return []

    return processes


def wait_all_finished(
    dsn: str, directives: int, began: float, timeout: float = 3600
) -> tuple[dict[str, int], float]:
    """The directives' statuses once all have finished, and how long after ``began``
    the last one left its draft (its start command applied)."""
    deadline = time.monotonic() + timeout
    all_started = float("nan")
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            rows = conn.execute("SELECT status, count(*) FROM directives GROUP BY status")
            statuses = {str(status): int(n) for status, n in rows.fetchall()}
            if all_started != all_started and not statuses.get("draft"):  # nan: not yet
                all_started = time.monotonic() - began
            finished = sum(statuses.get(s, 0) for s in ("completed", "failed", "cancelled"))
            if finished == directives or time.monotonic() > deadline:
                return statuses, all_started
            time.sleep(0.02)


def shared_out(dsn: str) -> list[int]:
    """How many directives each engine took the lease of (and so drove), most first."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT count(DISTINCT directive_id) FROM directive_events"
            " WHERE event_type = 'lease_acquired' GROUP BY data->>'engine' ORDER BY 1 DESC"
        ).fetchall()
    return [int(row[0]) for row in rows]


# --------------------------------------------------------------------------- main


def cpu_text(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", help="a server the benchmark may create databases on")
    parser.add_argument("--directives", type=int, default=40)
    parser.add_argument("--engines", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", metavar="DSN", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    with scratch_server(args.dsn) as server:
        report(server, args)


def report(server: str, args: argparse.Namespace) -> None:
    print(
        f"{args.directives} directives x {len(STEPS)} steps (diamond), instant tasks,"
        f" {args.repeat} interleaved repetition(s), {os.cpu_count()} CPUs",
        flush=True,
    )
    results: dict[int, list[dict[str, Any]]] = {n: [] for n in args.engines}
    for rep in range(args.repeat):
        for n in args.engines:
            r = run(server, n, args.directives)
            results[n].append(r)
            print(
                f"  repetition {rep + 1}: {n} engine(s) {r['seconds']:6.2f} s"
                f" {r['steps_per_s']:7.1f} steps/s  all started after {r['all_started_s']:.2f} s"
                f"  CPU: engines {cpu_text(r['engine_cpu_s'])},"
                f" server {cpu_text(r['server_cpu_s'])}"
                f"  directives per engine {r['shares']}",
                flush=True,
            )
    base = statistics.median(r["steps_per_s"] for r in results[args.engines[0]])
    cpus = os.cpu_count() or 1
    print(
        f"\n{'engines':>7} {'median s':>9} {'steps/s':>8} {'ratio':>6} {'CPU busy':>9}"
        "  runs (steps/s)"
    )
    for n in args.engines:
        rates = [r["steps_per_s"] for r in results[n]]
        rate = statistics.median(rates)
        seconds = statistics.median(r["seconds"] for r in results[n])
        busy = statistics.median(
            ((r["engine_cpu_s"] or 0.0) + (r["server_cpu_s"] or 0.0)) / (r["seconds"] * cpus)
            for r in results[n]
        )
        runs = ", ".join(f"{x:.1f}" for x in rates)
        print(
            f"{n:>7} {seconds:>9.2f} {rate:>8.1f} {rate / base:>6.2f} {busy:>9.0%}  {runs}",
            flush=True,
        )


if __name__ == "__main__":
    main()
