"""Commands from other processes: woken by LISTEN/NOTIFY, listening again after a
lost connection, each applied once and recorded with its outcome."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from engine_helpers import Scripted, wait_for

from directorate.actors import DirectiveSpec, DirectiveStatus, StepSpec
from directorate.actors.commands import CommandConsumer, issue_command, wait_for_outcome
from directorate.persistence.models import CommandStatus, CommandType

NEVER_POLL = 600.0
"""So long that only a notification can wake the consumer within a test."""


def running_directive(engine: Any, scripted: Scripted) -> uuid.UUID:
    scripted.write({"steps": {"*": {"sleep": 60}}})
    directive_id = engine.submit(
        DirectiveSpec(title="controlled", goal="be controlled", steps=[StepSpec(name="slow")])
    )
    engine.start_directive(directive_id)
    wait_for(lambda: engine.snapshot(directive_id).steps[0].status == "running")
    return directive_id


def listener_pids(dsn: str) -> set[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'directorate-commands'"
        ).fetchall()
    return {pid for (pid,) in rows}


@pytest.mark.timeout(60)
def test_a_notification_wakes_the_consumer_and_it_listens_again_after_a_reconnect(
    engine_factory: Any, scripted: Scripted, dsn: str
) -> None:
    # Its own consumer off: these consumers are the ones under test.
    engine = engine_factory(runner=scripted.runner(kill_grace_s=0.2), commands=False)
    directive_id = running_directive(engine, scripted)
    consumer = CommandConsumer(engine, poll_interval=NEVER_POLL).start()
    try:
        [first_pid] = wait_for(lambda: listener_pids(dsn))
        started = time.monotonic()
        paused = issue_command(engine.db, CommandType.PAUSE, directive_id, {"by": "ops"})
        assert wait_for_outcome(engine.db, paused, timeout=10).status is CommandStatus.APPLIED
        assert time.monotonic() - started < 5
        assert engine.db.reads.directive(directive_id).status is DirectiveStatus.PAUSED

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
        wait_for(lambda: listener_pids(dsn) - {first_pid})  # it reconnected and listens
        started = time.monotonic()
        resumed = issue_command(engine.db, CommandType.RESUME, directive_id, {"by": "ops"})
        assert wait_for_outcome(engine.db, resumed, timeout=10).status is CommandStatus.APPLIED
        assert time.monotonic() - started < 5
        assert consumer.is_alive() and consumer.failure is None
    finally:
        consumer.stop()


@pytest.mark.timeout(60)
def test_each_command_is_applied_once_and_refusals_are_recorded_with_the_reason(
    engine_factory: Any, scripted: Scripted
) -> None:
    # Its own consumer off: these consumers are the ones under test.
    engine = engine_factory(runner=scripted.runner(kill_grace_s=0.2), commands=False)
    directive_id = running_directive(engine, scripted)
    # Two daemons on one database race for the same commands.
    consumers = [CommandConsumer(engine, poll_interval=0.5).start() for _ in range(2)]
    try:
        ids: list[uuid.UUID] = []
        lock = threading.Lock()

        def issue() -> None:
            command_id = issue_command(engine.db, CommandType.PAUSE, directive_id, {})
            with lock:
                ids.append(command_id)

        threads = [threading.Thread(target=issue) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        outcomes = [wait_for_outcome(engine.db, i, timeout=20) for i in ids]
        statuses = sorted(str(c.status) for c in outcomes)
        assert statuses == ["applied"] + ["rejected"] * 5  # only one pause can happen
        for command in outcomes:
            if command.status is CommandStatus.REJECTED:
                assert command.reason and "paused" in command.reason
        assert sum(c.applied for c in consumers) == 1
        assert sum(c.rejected for c in consumers) == 5
        again = issue_command(engine.db, CommandType.START, directive_id, {})
        refused = wait_for_outcome(engine.db, again, timeout=10)
        assert refused.status is CommandStatus.REJECTED
        assert refused.reason and "paused" in refused.reason
    finally:
        for consumer in consumers:
            consumer.stop()
