"""Directorate and DBOS side by side (by hand, not in CI): one workload, one server.

    pip install -e ".[bench]"    # DBOS, for this benchmark only
    python tests/bench/peers.py [--dsn DSN] [--n 200 1000] [--repeat 3]
                                [--dbos-parallel gather|children]

The workload, on each side: N workflows (directives) of a 4-step diamond, a -> b, c
-> d, b and c in parallel, each step instant; durable, as both are by default
(synchronous_commit on, fsync on). Directorate runs it as engine.py does: one engine
in process, instant tasks, an always-green verifier, N directives submitted and
started together (``submit_many``, ``start_many``), each awaited. DBOS
(https://docs.dbos.dev, the `dbos` library) runs a workflow of four ``@DBOS.step()``
steps, its system database being the run's database, the N workflows started one by
one with ``DBOS.start_workflow_async`` and their results awaited together. With
``--dbos-parallel gather`` (the default) the workflow is async and runs b and c as
two asyncio tasks, DBOS's documented way of running steps concurrently inside a
workflow; with ``children`` it is a plain function that starts b and c as child
workflows (one step each) and waits on their handles, which costs two workflows more
per diamond.

Each run is a process of its own (this file, run as ``--child SIDE DSN N``: DBOS is
a process-wide singleton, and neither side then inherits the other's threads,
connections or heap) on a fresh database of the same server, after a CHECKPOINT so
that no run pays for the last one's dirty pages. The clock runs from the first
submit (start) to the last completion. Repetitions are interleaved (directorate,
DBOS, directorate, DBOS, ...), so that a noisy neighbour hits both alike.

Prints each run (seconds, steps per second, the run's own CPU time and the server's,
WAL bytes per step) and, per N, the median over ``--repeat`` of steps per second on
each side, their ratio, directorate's writer statements and commits per step and
both sides' WAL per step. The writer's counts leave out what does not go through the
writer (the lease claims and heartbeats, the reads). Without --dsn it uses an
embedded server in a temporary home.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from directorate.actors import (
    CallableRunner,
    DirectiveSpec,
    DirectiveStatus,
    Engine,
    EngineConfig,
    StepSpec,
)
from directorate.persistence.migrate import migrate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents"))
from engines import CpuClock, server_processes
from green import GreenVerifier
from scratch import scratch_database, scratch_server

STEPS = [
    StepSpec(name="a"),
    StepSpec(name="b", depends_on=["a"]),
    StepSpec(name="c", depends_on=["a"]),
    StepSpec(name="d", depends_on=["b", "c"]),
]
SIDES = ("directorate", "dbos")
RESULT = "peers result "
"""The child's one line on stdout that is its result (the rest is left to stderr)."""


# --------------------------------------------------------------------------- measuring


class Meter:
    """What a timed run costs: wall time, this process's CPU time (every thread),
    the server's CPU time and the WAL it wrote. Made just before the clock starts."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        checkpoint(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        self._lsn = str(row[0])
        self._server = CpuClock(server_processes(dsn))
        self._cpu = time.process_time()
        self._began = time.monotonic()

    def read(self, steps: int) -> dict[str, Any]:
        seconds = time.monotonic() - self._began
        cpu = time.process_time() - self._cpu
        server_cpu = self._server.used()
        # The WAL is the whole server's, but nothing else runs on it meanwhile.
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (self._lsn,)
            ).fetchone()
        assert row is not None
        return {
            "steps": steps,
            "seconds": seconds,
            "steps_per_s": steps / seconds,
            "cpu_s": cpu,
            "server_cpu_s": server_cpu,
            "wal_bytes_per_step": float(row[0]) / steps,
        }


def checkpoint(dsn: str) -> None:
    """Flush the server's dirty pages, so that each run starts from the same state
    (and every run pays alike for the full-page images after it)."""
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        print("(no CHECKPOINT: not allowed on this server)", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- directorate


def run_directorate(dsn: str, n: int) -> dict[str, Any]:
    migrate(dsn)
    with tempfile.TemporaryDirectory(prefix="directorate-bench-logs-") as logs:
        return directorate_run(dsn, n, Path(logs))


def directorate_run(dsn: str, n: int, log_dir: Path) -> dict[str, Any]:
    engine = Engine.start(
        EngineConfig(
            dsn=dsn,
            runner=CallableRunner(lambda task, cancel: None),
            verifiers=[GreenVerifier()],
            verifier_config={"auto_detect": False},
            max_concurrent_tasks=32,
            max_concurrent_evaluations=16,
            log_dir=log_dir,
        )
    )
    try:
        # Every write the engine makes for a directive goes through this one writer.
        before = engine.db.writer.stats()
        meter = Meter(dsn)
        specs = [
            DirectiveSpec(title=f"bench {i}", goal="bench", autonomy_level="full_auto", steps=STEPS)
            for i in range(n)
        ]
        # The batch API where the engine has it (an older checkout, for a before and
        # after, starts them one by one).
        if hasattr(engine, "submit_many"):
            ids = engine.submit_many(specs)
            started = engine.start_many(ids)
            assert all(isinstance(s, DirectiveStatus) for s in started), started
        else:
            ids = [engine.submit(spec) for spec in specs]
            for directive_id in ids:
                engine.start_directive(directive_id)
        for directive_id in ids:
            status = engine.wait(directive_id, timeout=3600)
            assert status is DirectiveStatus.COMPLETED, status
        result = meter.read(n * len(STEPS))
        after = engine.db.writer.stats()
    finally:
        engine.shutdown()
    steps = result["steps"]
    return {
        **result,
        "statements_per_step": (after["statements"] - before["statements"]) / steps,
        "commits_per_step": (after["transactions"] - before["transactions"]) / steps,
        "writes_per_step": (after["writes"] - before["writes"]) / steps,
    }


# --------------------------------------------------------------------------- DBOS


def sqlalchemy_url(dsn: str) -> str:
    """``dsn`` (a libpq string, as scratch_database makes) as the URL DBOS wants.
    Host and port go in the query, where the psycopg dialect hands them to libpq as
    they are: a socket directory is no URL host."""
    sqlalchemy: Any = importlib.import_module("sqlalchemy")  # comes with dbos
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    url = sqlalchemy.engine.URL.create(
        "postgresql",
        username=info.pop("user", None),
        password=info.pop("password", None),
        database=info.pop("dbname"),
        query={k: str(v) for k, v in info.items()},
    )
    return str(url.render_as_string(hide_password=False))


def run_dbos(dsn: str, n: int, parallel: str) -> dict[str, Any]:
    # Imported here, and as Any: dbos is in the bench extra only, so that neither the
    # tests nor mypy need it. The decorators are applied by call for the same reason
    # (an untyped decorator would make mypy --strict refuse the function).
    DBOS: Any = importlib.import_module("dbos").DBOS

    def instant(name: str) -> str:
        return name

    async def instant_async(name: str) -> str:
        return name

    step_async = DBOS.step(name="bench_step_async")(instant_async)
    step = DBOS.step(name="bench_step")(instant)

    async def diamond_gather(i: int) -> int:
        await step_async("a")
        # b and c as two tasks, made in a fixed order: DBOS numbers an async step as it
        # begins (before its first await), and asyncio begins tasks in the order they
        # were made, so a replay finds them under the same numbers.
        b, c = asyncio.create_task(step_async("b")), asyncio.create_task(step_async("c"))
        await asyncio.gather(b, c)
        await step_async("d")
        return i

    def branch(name: str) -> str:
        return str(step(name))

    branch_workflow = DBOS.workflow(name="bench_branch")(branch)

    def diamond_children(i: int) -> int:
        step("a")
        # Started before either is awaited: they run at once, on DBOS's executor.
        handles = [DBOS.start_workflow(branch_workflow, name) for name in ("b", "c")]
        for handle in handles:
            handle.get_result()
        step("d")
        return i

    diamond = DBOS.workflow(name="bench_diamond")(
        diamond_gather if parallel == "gather" else diamond_children
    )
    DBOS(
        config={
            "name": "directorate-bench",
            "system_database_url": sqlalchemy_url(dsn),
            "log_level": "WARNING",
        }
    )
    DBOS.launch()  # creates and migrates its system tables: before the clock
    try:

        async def all_of_them() -> list[int]:
            handles = [await DBOS.start_workflow_async(diamond, i) for i in range(n)]
            return list(await asyncio.gather(*(h.get_result() for h in handles)))

        # Each start is durable once it returns, as a directorate submit is; the
        # async workflows run on this event loop, the plain ones on DBOS's threads.
        meter = Meter(dsn)
        if parallel == "gather":
            results = asyncio.run(all_of_them())
        else:
            handles = [DBOS.start_workflow(diamond, i) for i in range(n)]
            results = [handle.get_result() for handle in handles]
        result = meter.read(n * len(STEPS))
        assert results == list(range(n)), "a workflow returned something else"
        with psycopg.connect(dsn) as conn:
            done = conn.execute(
                "SELECT status, count(*) FROM dbos.workflow_status GROUP BY status"
            ).fetchall()
        workflows = n if parallel == "gather" else 3 * n
        assert dict(done) == {"SUCCESS": workflows}, done
    finally:
        DBOS.destroy(destroy_registry=True)
    return result


# --------------------------------------------------------------------------- the child


def child(side: str, dsn: str, n: int, parallel: str) -> None:
    result = run_directorate(dsn, n) if side == "directorate" else run_dbos(dsn, n, parallel)
    print(RESULT + json.dumps(result), flush=True)


def run(server: str, side: str, n: int, parallel: str) -> dict[str, Any]:
    with scratch_database(server) as dsn:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", side, dsn, str(n), "--dbos-parallel", parallel],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if proc.returncode or not lines:
        raise SystemExit(f"{side}, N={n}: the run failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT) :])
    return result


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", help="a server the benchmark may create databases on")
    parser.add_argument("--n", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dbos-parallel", choices=["gather", "children"], default="gather")
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "DSN", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, dsn, n = args.child
        child(side, dsn, int(n), args.dbos_parallel)
        return
    if importlib.util.find_spec("dbos") is None:
        raise SystemExit('dbos is not installed: pip install -e ".[bench]"')
    with scratch_server(args.dsn) as server:
        report(server, args)


def settings(server: str) -> str:
    """The server's settings that make a run durable (or not), and its version."""
    names = ["synchronous_commit", "fsync", "server_version"]
    with psycopg.connect(server) as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s) ORDER BY name", (names,)
        ).fetchall()
    return ", ".join(f"{name}={setting}" for name, setting in rows)


def cpu_text(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"


def report(server: str, args: argparse.Namespace) -> None:
    print(
        f"N x {len(STEPS)} steps (diamond a -> b, c -> d), instant tasks, green verification;"
        f" DBOS {importlib.metadata.version('dbos')} ({args.dbos_parallel});"
        f" {args.repeat} interleaved repetition(s), {os.cpu_count()} CPUs; {settings(server)}",
        flush=True,
    )
    results: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for n in args.n:
        results[n] = {side: [] for side in SIDES}
        for rep in range(args.repeat):
            for side in SIDES:
                r = run(server, side, n, args.dbos_parallel)
                results[n][side].append(r)
                print(
                    f"  N={n} repetition {rep + 1}: {side:<11} {r['seconds']:7.2f} s"
                    f" {r['steps_per_s']:7.1f} steps/s  CPU: own {cpu_text(r['cpu_s'])},"
                    f" server {cpu_text(r['server_cpu_s'])}"
                    f"  WAL {r['wal_bytes_per_step'] / 1024:.1f} kB/step",
                    flush=True,
                )
    print(
        f"\n{'N':>6} {'directorate':>12} {'DBOS':>8} {'ratio':>6} {'stmts':>6} {'commits':>8}"
        f" {'WAL kB/step':>12}"
        f"\n{'':>6} {'steps/s':>12} {'steps/s':>8} {'':>6} {'/step':>6} {'/step':>8}"
        f" {'dir / DBOS':>12}"
    )
    for n in args.n:

        def median(side: str, key: str, n: int = n) -> float:
            return float(statistics.median(r[key] for r in results[n][side]))

        ours, theirs = median("directorate", "steps_per_s"), median("dbos", "steps_per_s")
        wal = (
            f"{median('directorate', 'wal_bytes_per_step') / 1024:.1f}"
            f" / {median('dbos', 'wal_bytes_per_step') / 1024:.1f}"
        )
        print(
            f"{n:>6} {ours:>12.1f} {theirs:>8.1f} {ours / theirs:>6.2f}"
            f" {median('directorate', 'statements_per_step'):>6.1f}"
            f" {median('directorate', 'commits_per_step'):>8.2f} {wal:>12}",
            flush=True,
        )


if __name__ == "__main__":
    main()
