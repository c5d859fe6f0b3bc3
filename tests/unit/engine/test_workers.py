"""The worker pools: crashed jobs come back as values, orphaned reports are recorded."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import pykka
import pytest

from directorate.actors.evaluation import Judgement
from directorate.actors.runners import CallableRunner, TaskResult
from directorate.actors.workers import Workers
from directorate.persistence.models import ConfidenceLevel, Task, TaskKind, TaskStatus
from directorate.verifiers.supervised import SupervisedProcess


class Inbox(pykka.ThreadingActor):
    """A real actor that hands what it is told to the test."""

    use_daemon_thread = True

    def __init__(self, got: list[Any], arrived: threading.Event) -> None:
        super().__init__()
        self.got, self.arrived = got, arrived

    def on_receive(self, message: Any) -> None:
        self.got.append(message)
        self.arrived.set()


def task() -> Task:
    return Task(id=uuid.uuid4(), directive_id=uuid.uuid4(), kind=TaskKind.STEP, instructions="")


@pytest.fixture
def inbox() -> Any:
    got: list[Any] = []
    arrived = threading.Event()
    ref = Inbox.start(got, arrived)
    yield ref, got, arrived
    ref.stop()


def workers(orphans: list[tuple[uuid.UUID, TaskResult]] | None = None) -> Workers:
    kept = orphans if orphans is not None else []
    return Workers(2, 2, orphaned=lambda task_id, result: kept.append((task_id, result)))


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt(), RuntimeError("bug")])
def test_an_agent_that_raises_anything_reports_a_failed_attempt(inbox: Any, raised: Any) -> None:
    ref, got, arrived = inbox

    def agent(task: Task, cancel: threading.Event) -> None:
        raise raised

    pool = workers()
    job = task()
    pool.run_task(job, CallableRunner(agent), ref, lambda result: result)
    assert arrived.wait(10)
    [result] = got
    assert isinstance(result, TaskResult)
    assert result.status is TaskStatus.FAILED
    assert type(raised).__name__ in (result.error or "")
    assert pool.wait_idle(10) and pool.live_tasks() == frozenset()
    pool.shutdown()


def test_a_verifier_that_calls_sys_exit_gives_a_red_judgement(inbox: Any) -> None:
    ref, got, arrived = inbox

    def verify() -> Judgement:
        raise SystemExit(3)

    pool = workers()
    pool.evaluate(verify, ref, lambda judgement: judgement)
    assert arrived.wait(10)
    [judgement] = got
    assert judgement.confidence_level is ConfidenceLevel.RED
    assert "SystemExit(3)" in judgement.summary
    pool.shutdown()


def test_a_report_whose_actor_has_stopped_is_recorded_directly(inbox: Any) -> None:
    ref, _, _ = inbox
    release = threading.Event()

    def agent(task: Task, cancel: threading.Event) -> dict[str, float]:
        release.wait(10)
        return {"cost_usd": 2.0}

    orphans: list[tuple[uuid.UUID, TaskResult]] = []
    pool = workers(orphans)
    job = task()
    pool.run_task(job, CallableRunner(agent), ref, lambda result: result)
    assert pool.live_tasks() == {job.id}
    ref.stop()  # the step actor is gone before its agent reports
    release.set()
    assert pool.wait_idle(10)
    [(task_id, result)] = orphans
    assert task_id == job.id and result.cost_usd == 2.0
    pool.shutdown()


def test_cancel_all_reaches_every_running_agent(inbox: Any) -> None:
    ref, got, _ = inbox

    def agent(task: Task, cancel: threading.Event) -> None:
        assert cancel.wait(10)

    pool = workers()
    for _ in range(2):
        pool.run_task(task(), CallableRunner(agent), ref, lambda result: result)
    assert pool.cancel_all() == 2
    assert pool.wait_idle(10)  # every report told (the inbox may not have read them yet)
    ref.stop(block=True)  # ...but it reads everything told before it stops
    assert [r.status for r in got] == [TaskStatus.CANCELLED] * 2
    pool.shutdown()


def test_live_tasks_are_kept_by_directive_and_by_step(inbox: Any) -> None:
    ref, _, _ = inbox
    release = threading.Event()

    def agent(task: Task, cancel: threading.Event) -> None:
        assert release.wait(10)

    pool = workers()
    directive_id, step_id = uuid.uuid4(), uuid.uuid4()
    planning = Task(
        id=uuid.uuid4(), directive_id=directive_id, kind=TaskKind.PLANNING, instructions=""
    )
    step = attrs.evolve(task(), directive_id=directive_id, step_id=step_id)
    other = task()
    for job in (planning, step, other):
        pool.run_task(job, CallableRunner(agent), ref, lambda result: result)
    assert pool.live_tasks(directive_id) == {planning.id, step.id}
    assert pool.live_tasks(step_id) == {step.id}
    assert pool.live_tasks(other.directive_id) == {other.id}
    assert pool.live_tasks() == {planning.id, step.id, other.id}
    release.set()
    assert pool.wait_idle(10)
    assert pool.live_tasks(directive_id) == frozenset() == pool.live_tasks(step_id)
    pool.shutdown()


def test_a_job_submitted_after_shutdown_is_recorded_as_not_started(inbox: Any) -> None:
    ref, got, _ = inbox
    orphans: list[tuple[uuid.UUID, TaskResult]] = []
    pool = workers(orphans)
    pool.shutdown()
    job = task()
    pool.run_task(job, CallableRunner(lambda t, c: None), ref, lambda result: result)
    [(task_id, result)] = orphans
    assert task_id == job.id and result.status is TaskStatus.CANCELLED
    assert got == [] and pool.live_tasks() == frozenset()


class ReportsItsProcess:
    """A ``ProcessRunner`` whose 'agent' is this test's process, told once it runs."""

    kill_grace_s = 1.0

    def __init__(self, process: SupervisedProcess) -> None:
        self.process = process
        self.plain_runs = 0

    def run(self, task: Task, cancel: threading.Event) -> TaskResult:
        self.plain_runs += 1
        return TaskResult(status=TaskStatus.FAILED)

    def run_process(
        self, task: Task, cancel: threading.Event, started: Callable[[SupervisedProcess], None]
    ) -> TaskResult:
        started(self.process)
        return TaskResult(status=TaskStatus.SUCCEEDED)


@pytest.mark.parametrize("recorder_fails", [False, True], ids=["recorded", "recorder-fails"])
def test_a_process_runner_is_told_to_report_its_process_and_a_failing_record_is_harmless(
    inbox: Any, recorder_fails: bool
) -> None:
    ref, got, arrived = inbox
    process = SupervisedProcess(
        pid=4242,
        pgid=4242,
        started_at=1.0,
        supervisor_pid=4241,
        supervisor_started_at=1.0,
        host="here",
    )
    recorded: list[tuple[uuid.UUID, SupervisedProcess]] = []

    def record(task: Task, process: SupervisedProcess) -> None:
        if recorder_fails:
            raise RuntimeError("the database is away")
        recorded.append((task.id, process))

    pool = Workers(2, 2, orphaned=lambda task_id, result: None, started=record)
    runner = ReportsItsProcess(process)
    job = task()
    pool.run_task(job, runner, ref, lambda result: result)
    assert arrived.wait(10)
    assert [r.status for r in got] == [TaskStatus.SUCCEEDED]  # the task is unharmed
    assert runner.plain_runs == 0
    assert recorded == ([] if recorder_fails else [(job.id, process)])
    pool.shutdown()
