"""A database outage under live directives: they wait for it and go on by themselves.

The server is the test's own (``own_server``), stopped for ``--outage-s`` seconds
(five minutes by default) while ten directives have agents at work.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from engine_helpers import GreenVerifier, Scripted, running_task, wait_for

from directorate.actors import DirectiveSpec, DirectiveStatus, Engine, EngineConfig, StepSpec

DIRECTIVES = 10


def _engine(dsn: str, tmp_path: Path, scripted: Scripted) -> Engine:
    return Engine.start(
        EngineConfig(
            dsn=dsn,
            runner=scripted.runner(),
            log_dir=tmp_path / "logs",
            verifiers=[GreenVerifier()],
            verifier_config={"auto_detect": False},
            tick_interval_s=0.2,
            max_concurrent_tasks=DIRECTIVES,
        )
    )


def _start_directives(engine: Engine, count: int) -> list[uuid.UUID]:
    ids = []
    for n in range(count):
        spec = DirectiveSpec(
            title=f"outage {n}",
            goal="Ride out a database outage",
            autonomy_level="full_auto",
            steps=[StepSpec(name="first"), StepSpec(name="second", depends_on=["first"])],
        )
        ids.append(engine.submit(spec))
        engine.start_directive(ids[-1])
    return ids


def _never_paused(engine: Engine, directive_id: uuid.UUID) -> list[str]:
    """What in the directive's history says it stopped for the outage (nothing)."""
    return [
        f"{e.event_type} {e.data}"
        for e in engine.db.reads.events_after(directive_id, limit=100_000)
        if e.event_type == "actor_failed"
        or (e.event_type == "directive_status_changed" and e.data.get("new_status") == "paused")
    ]


@pytest.mark.outage
def test_ten_live_directives_ride_out_an_outage_without_a_manual_resume(
    own_server: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    outage_s = float(request.config.getoption("--outage-s"))
    scripted = Scripted(tmp_path / "agent")
    gate = tmp_path / "gate"
    scripted.write({"steps": {"first": {"gate": str(gate)}, "*": {}}})
    engine = _engine(own_server.dsn, tmp_path, scripted)
    try:
        ids = _start_directives(engine, DIRECTIVES)
        # Every directive has an agent at work when the database goes away.
        wait_for(lambda: all(running_task(engine, i) for i in ids), 60)
        me = psutil.Process()
        own_server.stop()
        stopped_at = time.time()
        gate.touch()  # the agents finish during the outage: their reports must wait
        cpu_before = sum(me.cpu_times()[:2])
        rss = [me.memory_info().rss]
        ends = time.monotonic() + outage_s
        while (left := ends - time.monotonic()) > 0:
            time.sleep(min(left, 5.0))  # the outage itself, sampled every 5 s
            rss.append(me.memory_info().rss)
        cpu_s = sum(me.cpu_times()[:2]) - cpu_before
        own_server.start()
        restarted_at = time.time()
        statuses = [engine.wait(i, timeout=180) for i in ids]
        took = time.time() - restarted_at
        print(
            f"\noutage {outage_s:.0f} s: engine CPU {cpu_s:.2f} s "
            f"({100 * cpu_s / outage_s:.2f} % of a core), RSS {rss[0] / 2**20:.1f} -> "
            f"{max(rss) / 2**20:.1f} MiB; all {DIRECTIVES} completed {took:.1f} s after "
            "the database was back"
        )
        assert statuses == [DirectiveStatus.COMPLETED] * DIRECTIVES
        assert [_never_paused(engine, i) for i in ids] == [[]] * DIRECTIVES
        firsts, seconds = scripted.step_runs("first"), scripted.step_runs("second")
        assert len(firsts) == len(seconds) == DIRECTIVES  # one attempt each: nothing redone
        assert all(r["finished"] > stopped_at for r in firsts)  # they did end in the outage
        # Nothing was dispatched while the database was away.
        assert all(r["started"] > restarted_at for r in seconds)
        assert cpu_s < 0.05 * outage_s, f"{cpu_s:.1f} s of CPU while waiting"
        assert max(rss) - rss[0] < 50 * 2**20
    finally:
        engine.shutdown()


def test_shutdown_during_an_outage_ends_within_its_deadline_and_says_what_was_not_written(
    own_server: Any, tmp_path: Path
) -> None:
    scripted = Scripted(tmp_path / "agent")
    gate = tmp_path / "gate"  # never opened: the agents are cancelled by the shutdown
    scripted.write({"steps": {"first": {"gate": str(gate)}, "*": {}}})
    engine = _engine(own_server.dsn, tmp_path, scripted)
    ids = _start_directives(engine, 3)
    wait_for(lambda: all(running_task(engine, i) for i in ids), 60)
    own_server.stop()
    started = time.monotonic()
    report = engine.shutdown(timeout=10.0)
    took = time.monotonic() - started
    assert took < 10.0, f"shutdown took {took:.1f} s"
    assert report.agents_left == 0
    # The cancelled agents' reports could not be stored: the report says so.
    assert len(report.unwritten) >= 3, report
    assert all(f"directive {i}" in " ".join(report.unwritten) for i in ids)
    assert "not written" in report.describe()

    own_server.start()
    gate.touch()
    again = _engine(own_server.dsn, tmp_path, scripted)  # recovers them
    try:
        assert [again.wait(i, timeout=60) for i in ids] == [DirectiveStatus.COMPLETED] * 3
        assert [_never_paused(again, i) for i in ids] == [[]] * 3
    finally:
        again.shutdown()
