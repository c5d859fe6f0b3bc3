"""Engine benchmark (by hand, not in CI): N directives x an M-step DAG, instant tasks.

    python tests/bench/engine.py [--dsn DSN] [--directives 100 1000] [--steps 6]
                                 [--actor-threads N]

Prints steps per second, the median and 99th-percentile latency from a dependency
passing (its commit's transaction time) to its dependent's task starting, peak RSS
and peak thread count. Without --dsn it uses a fresh database on the embedded server.
The directives are started together (``start_many``), so every first step is
dispatched at once and the latency includes the wait behind all of them; started
one by one, as before ``start_many``, the median was ~90-110 ms at 100 directives.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

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
from green import GreenVerifier
from scratch import scratch_database, scratch_server


def dag(steps: int) -> list[StepSpec]:
    """A diamond: s0, then s1..s(M-2) in parallel, then s(M-1) joining them."""
    middle = [StepSpec(name=f"s{i}", depends_on=["s0"]) for i in range(1, steps - 1)]
    last = StepSpec(name=f"s{steps - 1}", depends_on=[s.name for s in middle] or ["s0"])
    return [StepSpec(name="s0"), *middle, last]


def run(dsn: str, directives: int, steps: int, actor_threads: int | None = None) -> dict[str, Any]:
    starts: dict[uuid.UUID, float] = {}
    lock = threading.Lock()

    def instant(task: Any, cancel: threading.Event) -> None:
        with lock:
            starts[task.step_id] = time.time()

    peak_threads = threading.active_count()
    stop_sampling = threading.Event()

    def sample() -> None:
        nonlocal peak_threads
        while not stop_sampling.wait(0.05):
            peak_threads = max(peak_threads, threading.active_count())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    engine = Engine.start(
        EngineConfig(
            dsn=dsn,
            runner=CallableRunner(instant),
            verifiers=[GreenVerifier()],
            verifier_config={"auto_detect": False},
            max_concurrent_tasks=32,
            max_concurrent_evaluations=16,
            **({} if actor_threads is None else {"actor_threads": actor_threads}),
            log_dir=Path(tempfile.mkdtemp()),
        )
    )
    try:
        began = time.monotonic()
        ids = engine.submit_many(
            [
                DirectiveSpec(
                    title=f"bench {i}", goal="bench", autonomy_level="full_auto", steps=dag(steps)
                )
                for i in range(directives)
            ]
        )
        started = engine.start_many(ids)
        assert all(s is DirectiveStatus.ACTIVE for s in started), started
        for directive_id in ids:
            status = engine.wait(directive_id, timeout=3600)
            assert status is DirectiveStatus.COMPLETED, status
        elapsed = time.monotonic() - began
        latencies = dependency_latencies(engine, starts)
    finally:
        engine.shutdown()
        stop_sampling.set()
        sampler.join()
    return {
        "directives": directives,
        "steps": directives * steps,
        "seconds": elapsed,
        "steps_per_s": directives * steps / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p99_ms": (
            statistics.quantiles(latencies, n=100)[98] * 1000
            if len(latencies) >= 100
            else float("nan")
        ),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_threads": peak_threads,
    }


def dependency_latencies(engine: Engine, starts: dict[uuid.UUID, float]) -> list[float]:
    with engine.db.pool.connection() as conn:
        passed = dict(
            conn.execute(
                "SELECT step_id, extract(epoch FROM created_at) FROM directive_events"
                " WHERE event_type = 'step_status_changed' AND data->>'new_status' = 'passed'"
            ).fetchall()
        )
        deps = conn.execute("SELECT id, depends_on FROM chain_steps").fetchall()
    latencies = []
    for step_id, depends_on in deps:
        if depends_on and step_id in starts:
            ready_at = max(float(passed[d]) for d in depends_on)
            latencies.append(starts[step_id] - ready_at)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn")
    parser.add_argument("--directives", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--actor-threads", type=int, help="EngineConfig.actor_threads")
    args = parser.parse_args()
    with scratch_server(args.dsn) as server:
        report(server, args)


def report(server: str, args: argparse.Namespace) -> None:
    print(
        f"{'N':>6} {'steps':>7} {'seconds':>8} {'steps/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'RSS MB':>7} {'threads':>8}"
    )
    for n in args.directives:
        with scratch_database(server) as dsn:
            migrate(dsn)
            r = run(dsn, n, args.steps, args.actor_threads)
        print(
            f"{r['directives']:>6} {r['steps']:>7} {r['seconds']:>8.1f} {r['steps_per_s']:>8.0f}"
            f" {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['peak_rss_mb']:>7.0f}"
            f" {r['peak_threads']:>8}",
            flush=True,
        )


if __name__ == "__main__":
    main()
