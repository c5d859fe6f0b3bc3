"""Two engines on one database (DESIGN §17): a directive is driven by the engine that
holds its lease; requests for it made to another engine are applied by its owner; an
engine whose lease is taken stops driving at once, and its agent's late report is a
stale attempt, never the step's outcome."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from engine_helpers import Scripted, pid_alive, running_task, wait_for

from directorate.actors import DirectiveSpec, StepSpec
from directorate.persistence.errors import InvalidTransition
from directorate.persistence.models import CommandStatus, DirectiveStatus


def spec(**changes: Any) -> DirectiveSpec:
    return DirectiveSpec(title="Owned", goal="Be driven by one engine at a time", **changes)


def events(engine: Any, directive_id: uuid.UUID, kind: str) -> list[Any]:
    return [e for e in engine.db.reads.events_after(directive_id) if e.event_type == kind]


def passes(engine: Any, directive_id: uuid.UUID) -> list[Any]:
    moves = events(engine, directive_id, "step_status_changed")
    return [e for e in moves if e.data["new_status"] == "passed"]


def lease(dsn: str, directive_id: uuid.UUID) -> tuple[Any, ...]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT lease_owner, lease_epoch FROM directives WHERE id = %s", (directive_id,)
        ).fetchone()
    assert row is not None
    return tuple(row)


def expire(dsn: str, engine_id: uuid.UUID) -> None:
    """As if the engine had stopped beating (frozen, cut off) a while ago."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE engines SET expires_at = now() - interval '1 second' WHERE id = %s",
            (engine_id,),
        )


def held_at_its_first_attempt(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> tuple[Any, uuid.UUID, Any, Path]:
    """An engine whose one-step directive's first attempt (costing 2.5) waits at a gate.
    Its heartbeat is slow, so its lease can be taken before it renews it."""
    gate = tmp_path / "gate"
    scripted.write({"steps": {"only": {"attempts": {"1": {"gate": str(gate), "cost": 2.5}}}}})
    first = engine_factory(runner=scripted.runner(), lease_ttl_s=30, heartbeat_interval_s=20)
    directive_id = first.submit(spec(steps=[StepSpec(name="only")], autonomy_level="full_auto"))
    first.start_directive(directive_id)
    task = wait_for(lambda: (t := running_task(first, directive_id)) and t.pid and t)
    return first, directive_id, task, gate


@pytest.mark.timeout(60)
def test_another_engine_leaves_a_driven_directive_alone_and_forwards_requests(
    engine_factory: Any, scripted: Scripted, dsn: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    scripted.write({"steps": {"only": {"gate": str(gate)}}})
    owner = engine_factory(runner=scripted.runner())
    directive_id = owner.submit(spec(steps=[StepSpec(name="only")], autonomy_level="full_auto"))
    owner.start_directive(directive_id)
    wait_for(lambda: running_task(owner, directive_id))
    other = engine_factory(runner=scripted.runner())
    assert other.recover() == []
    assert other.live_actor_count() == 0
    assert lease(dsn, directive_id) == (owner.engine_id, 1)
    # A request made to the other engine is applied by the owner, as a command.
    assert other.pause(directive_id, by="someone") is DirectiveStatus.PAUSED
    with psycopg.connect(dsn) as conn:
        [(status,)] = conn.execute("SELECT status FROM directive_commands").fetchall()
    assert status == CommandStatus.APPLIED
    assert other.live_actor_count() == 0 and lease(dsn, directive_id) == (owner.engine_id, 1)
    with pytest.raises(Exception, match="paused -> paused"):  # the owner's refusal, relayed
        other.pause(directive_id)
    gate.touch()
    # The answer is what the resume did, though the directive may complete at once.
    assert other.resume(directive_id) is DirectiveStatus.ACTIVE
    assert owner.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    with psycopg.connect(dsn) as conn:
        outcomes = conn.execute(
            "SELECT command, status, result FROM directive_commands ORDER BY created_at"
        ).fetchall()
    assert outcomes == [
        ("pause", "applied", "paused"),
        ("pause", "rejected", None),
        ("resume", "applied", "active"),
    ]
    # Paused once, the first attempt was cancelled (it records nothing): one more ran.
    assert [r["attempt"] for r in scripted.step_runs("only")] == [2]
    # Finished, the directive is given up: an engine holds only what it drives.
    wait_for(lambda: lease(dsn, directive_id) == (None, 1))
    assert events(owner, directive_id, "lease_released")


@pytest.mark.timeout(60)
def test_an_engine_whose_lease_is_taken_stops_and_its_report_is_a_stale_attempt(
    engine_factory: Any, scripted: Scripted, dsn: str, tmp_path: Path
) -> None:
    first, directive_id, task, _gate = held_at_its_first_attempt(engine_factory, scripted, tmp_path)
    assert task.engine_id == first.engine_id
    second = engine_factory(runner=scripted.runner())
    expire(dsn, first.engine_id)
    taken = wait_for(lambda: events(second, directive_id, "taken_over"))
    assert taken[0].data["from_engine"] == str(first.engine_id)
    assert lease(dsn, directive_id) == (second.engine_id, 2)
    # The new owner stops the old agent (same host) before running attempt 2; the old
    # engine hears its agent end, its write is refused, and it lets the directive go.
    assert second.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    assert not pid_alive(task.pid)
    wait_for(lambda: first.live_actor_count() == 0)
    tasks = second.db.reads.tasks_of_directive(directive_id)
    steps = [t for t in tasks if t.step_id is not None]
    assert [t.attempt for t in steps] == [1, 2]
    assert steps[0].status == "cancelled" and steps[1].status == "succeeded"
    assert steps[1].engine_id == second.engine_id
    assert len(passes(second, directive_id)) == 1
    assert [r["attempt"] for r in scripted.step_runs("only")] == [2]
    with pytest.raises(InvalidTransition):  # the first engine no longer drives it
        first.pause(directive_id)


@pytest.mark.timeout(60)
def test_a_report_after_the_lease_was_lost_is_counted_never_the_outcome(
    engine_factory: Any, scripted: Scripted, dsn: str, tmp_path: Path
) -> None:
    """The old engine learns of the takeover from its own refused write: its agent's
    report (exit 0, a cost) arrives after the lease was taken."""
    first, directive_id, task, gate = held_at_its_first_attempt(engine_factory, scripted, tmp_path)
    expire(dsn, first.engine_id)
    # Taken by a claim of a third engine that drives nothing (no recovery, no stale
    # check): the first engine's agent finishes and reports to its own engine.
    with psycopg.connect(dsn, autocommit=True) as conn:
        from directorate.persistence import ownership

        thief = uuid.uuid4()
        ownership.register_engine(conn, thief, ttl_s=60, takes_over=False)
        assert ownership.claim(conn, thief, ids=[directive_id])
    gate.touch()
    [stale] = wait_for(lambda: events(first, directive_id, "stale_attempt"))
    assert stale.data["task_id"] == str(task.id) and stale.data["cost_usd"] == 2.5
    [lost] = wait_for(lambda: events(first, directive_id, "lease_lost"))
    assert lost.data["engine"] == str(first.engine_id)
    wait_for(lambda: first.live_actor_count() == 0)
    stored = first.db.reads.task(task.id)
    assert stored.stale_reported_at is not None
    assert stored.status == "running", "its outcome is the owner's to decide"
    directive = first.db.reads.directive(directive_id)
    assert directive.total_cost_usd == pytest.approx(2.5), "what it cost is counted"
    assert not passes(first, directive_id)
    assert directive.status is DirectiveStatus.ACTIVE


@pytest.mark.timeout(60)
def test_the_heartbeat_finds_a_lease_taken_while_the_engine_writes_nothing(
    engine_factory: Any, scripted: Scripted, dsn: str, tmp_path: Path
) -> None:
    """No write of the engine's is refused (its agent waits at a gate): its heartbeat,
    which reads the leases back only when their sum differs, notices the takeover."""
    gate = tmp_path / "gate"
    scripted.write({"steps": {"only": {"gate": str(gate)}}})
    first = engine_factory(runner=scripted.runner(), lease_ttl_s=30, heartbeat_interval_s=0.2)
    held = first.submit(spec(steps=[StepSpec(name="only")], autonomy_level="full_auto"))
    kept = first.submit(spec(steps=[StepSpec(name="only")], autonomy_level="full_auto"))
    first.start_many([held, kept])
    wait_for(lambda: running_task(first, held) and running_task(first, kept))
    with psycopg.connect(dsn, autocommit=True) as conn:
        from directorate.persistence import ownership

        thief = uuid.uuid4()
        ownership.register_engine(conn, thief, ttl_s=60, takes_over=False)
        # As a claim after an expiry would, without letting the first engine's row
        # expire (its heartbeat would renew it at once).
        conn.execute(
            "UPDATE directives SET lease_owner = %s, lease_epoch = lease_epoch + 1 WHERE id = %s",
            (thief, held),
        )
    [lost] = wait_for(lambda: events(first, held, "lease_lost"))
    assert lost.data["reason"] == "another engine took the lease while this one was silent"
    wait_for(lambda: first.live_actor_count() == 1)
    assert not events(first, kept, "lease_lost")
    assert lease(dsn, kept) == (first.engine_id, 1)
