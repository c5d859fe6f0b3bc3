"""Live-directive benchmark (by hand, not in CI): N directives held live at once.

    python tests/bench/live.py [--dsn DSN] [--directives 10000] [--steps 6]
                               [--actor-threads N] [--tracemalloc]

Each directive is the diamond DAG of ``engine.py`` whose agents block (on one event,
set at the end; a cancel stops them), judged by the always-green verifier, with the
engine's default ``max_concurrent_tasks``: every directive starts, its first step is
dispatched, and it stays live. Submitted with ``submit_many`` and started with
``start_many`` (one at a time on an engine without them). Prints how fast directives
are submitted and started, how long until all are live (active, their first step
running or ready), RSS (now and peak), threads and actors, then how long the
shutdown takes. ``--tracemalloc`` adds the largest allocation sites once all are live.
Without --dsn it uses a fresh database on the embedded server.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import attrs
import psutil

from directorate.actors import (
    CallableRunner,
    DirectiveSpec,
    DirectiveStatus,
    Engine,
    EngineConfig,
    Task,
)
from directorate.persistence.migrate import migrate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agents"))
from engine import dag
from green import GreenVerifier
from scratch import scratch_database, scratch_server

MB = 1024 * 1024


class Held:
    """The agents: each waits until ``release`` is set, or its task is cancelled."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = 0
        self._lock = threading.Lock()

    def __call__(self, task: Task, cancel: threading.Event) -> None:
        with self._lock:
            self.started += 1
        # Two events to watch and no way to wait on both: look at the cancel between
        # short waits (only max_concurrent_tasks agents run at once).
        while not self.release.wait(0.1):
            if cancel.is_set():
                return


class Peaks:
    """The peak thread count, sampled on a thread of its own."""

    def __init__(self) -> None:
        self.threads = threading.active_count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.threads = max(self.threads, threading.active_count())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def live_count(engine: Engine) -> int:
    """Directives active whose first step (s0) is running or ready."""
    with engine.db.pool.connection() as conn:
        row = conn.execute(
            "SELECT count(*) FROM directives d JOIN directive_chains c"
            " ON c.directive_id = d.id AND c.status = 'active'"
            " JOIN chain_steps s ON s.chain_id = c.id AND s.name = 's0'"
            " WHERE d.status = 'active' AND s.status IN ('running', 'ready')"
        ).fetchone()
    return int(row[0]) if row else 0


def run(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    agents = Held()
    peaks = Peaks()
    settings: dict[str, Any] = {
        "dsn": dsn,
        "runner": CallableRunner(agents),
        "verifiers": [GreenVerifier()],
        "verifier_config": {"auto_detect": False},
        "log_dir": Path(tempfile.mkdtemp()),
    }
    if args.actor_threads is not None:
        settings["actor_threads"] = args.actor_threads
    process = psutil.Process()
    rss_before = process.memory_info().rss
    engine = Engine.start(EngineConfig(**settings))
    n = args.directives
    specs = [
        DirectiveSpec(
            title=f"live {i}", goal="live", autonomy_level="full_auto", steps=dag(args.steps)
        )
        for i in range(n)
    ]
    batch = hasattr(engine, "submit_many")  # an engine from before the batch API: one by one
    try:
        written = engine.db.writer.stats()
        began = time.monotonic()
        ids = engine.submit_many(specs) if batch else [engine.submit(s) for s in specs]
        submitted = time.monotonic()
        statuses = engine.start_many(ids) if batch else [engine.start_directive(i) for i in ids]
        started = time.monotonic()
        assert all(s is DirectiveStatus.ACTIVE for s in statuses), {str(s) for s in statuses}
        while (live := live_count(engine)) < n:
            if time.monotonic() - started > 600:
                raise SystemExit(f"only {live} of {n} directives live after 600 s")
            time.sleep(0.2)  # a benchmark's poll of the database, not a test's synchronisation
        all_live = time.monotonic()
        rss = process.memory_info().rss
        now_written = engine.db.writer.stats()
        writes = {k: now_written[k] - written[k] for k in ("statements", "transactions")}
        stats = engine.actor_stats() if hasattr(engine, "actor_stats") else {}
        figures = {
            "directives": n,
            "submit_per_s": n / (submitted - began),
            "start_per_s": n / (started - submitted),
            "both_per_s": n / (started - began),
            "live_s": all_live - began,
            "live_after_start_s": all_live - started,
            "rss_mb": rss / MB,
            "rss_engine_mb": (rss - rss_before) / MB,
            "threads": threading.active_count(),
            "live_actors": engine.live_actor_count(),
            "stats": stats,
            "agents_started": agents.started,
            "statements_per_directive": writes["statements"] / n,
            "transactions": writes["transactions"],
        }
        if args.tracemalloc:
            figures["tracemalloc"] = tracemalloc.take_snapshot().statistics("lineno")[:25]
    finally:
        agents.release.set()
        shutting = time.monotonic()
        report = engine.shutdown(timeout=args.shutdown_timeout)
        peaks.stop()
    figures |= {
        "shutdown_s": time.monotonic() - shutting,
        "shutdown": report.describe() if hasattr(report, "describe") else attrs.asdict(report),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_threads": peaks.threads,
    }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn")
    parser.add_argument("--directives", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--actor-threads", type=int, help="EngineConfig.actor_threads")
    parser.add_argument("--shutdown-timeout", type=float, default=300.0)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start(5)
    with scratch_server(args.dsn) as server, scratch_database(server) as dsn:
        migrate(dsn)
        r = run(dsn, args)
    print(f"directives        {r['directives']} x {args.steps} steps, agents blocking")
    print(
        f"started per s     submit {r['submit_per_s']:.0f}, start {r['start_per_s']:.0f},"
        f" both {r['both_per_s']:.0f}"
    )
    print(
        f"all live after    {r['live_s']:.1f} s ({r['live_after_start_s']:.1f} s after the"
        " last start returned)"
    )
    print(
        f"RSS               {r['rss_mb']:.0f} MB now ({r['rss_engine_mb']:.0f} MB since the"
        f" engine started), {r['peak_rss_mb']:.0f} MB peak"
    )
    print(f"threads           {r['threads']} now, {r['peak_threads']} peak")
    print(f"live actors       {r['live_actors']} directive actors; {r['stats']}")
    print(f"agents started    {r['agents_started']}")
    print(
        f"writer            {r['statements_per_directive']:.1f} statements per directive"
        f" (submitted, started, first step dispatched) in {r['transactions']} transactions"
    )
    print(f"shutdown          {r['shutdown_s']:.1f} s: {r['shutdown']}")
    for stat in r.get("tracemalloc", []):
        print(f"  {stat.size / MB:8.1f} MB {stat.count:>9} {stat.traceback}")


if __name__ == "__main__":
    main()
