"""The bounded pools where long work runs: agent tasks and evaluations.

A job never raises into an actor: whatever it raises (``SystemExit`` included) comes
back as a value, a failed ``TaskResult``, a red ``Judgement`` or a failed stale-agent
check, told to the actor that started it. A task report whose actor has stopped is
recorded directly, by task id, so no agent's outcome or cost is ever lost.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Protocol, TypeVar

import attrs
import pykka

from directorate.persistence.models import Task, TaskStatus
from directorate.verifiers.stale_agents import (
    RecordedProcess,
    StaleAgentCheck,
    StaleOutcome,
    stop_stale_agent,
)
from directorate.verifiers.supervised import SupervisedProcess, this_host

from .evaluation import Judgement, red_judgement
from .runners import ProcessRunner, TaskResult, TaskRunner

log = logging.getLogger(__name__)

T = TypeVar("T")

Orphaned = Callable[[uuid.UUID, TaskResult], None]
"""Records a task report (by task id) that no actor is left to take."""
Started = Callable[[Task, SupervisedProcess], None]
"""Records which processes run a task's agent (``ProcessRunner`` runners only)."""
STALE_CHECK_THREADS = 2
"""Checks for dead engines' agents at once (each waits at most a grace and a sweep)."""


class Workers:
    """Agent tasks, evaluations and stale-agent checks, each in its own bounded pool."""

    def __init__(
        self,
        max_tasks: int,
        max_evaluations: int,
        *,
        orphaned: Orphaned,
        started: Started | None = None,
    ) -> None:
        self.tasks = ThreadPoolExecutor(max_tasks, thread_name_prefix="directorate-task")
        self.evaluations = ThreadPoolExecutor(
            max_evaluations, thread_name_prefix="directorate-eval"
        )
        # Its own pool: a recovery must not wait behind hours-long agents in the
        # task pool (its threads start only when a check is asked for).
        self.stale_checks = ThreadPoolExecutor(
            STALE_CHECK_THREADS, thread_name_prefix="directorate-stale"
        )
        self._orphaned = orphaned
        self._started = started
        self._cancels: dict[uuid.UUID, threading.Event] = {}
        self._live: dict[uuid.UUID, set[uuid.UUID]] = {}
        """Directive id and step id -> their tasks in ``_cancels``."""
        self._background: set[object] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._closed = False

    def run_task(
        self,
        task: Task,
        runner: TaskRunner,
        reply_to: pykka.ActorRef[Any],
        reply: Callable[[TaskResult], Any],
        *,
        around: TaskAround | None = None,
    ) -> threading.Event:
        """Run ``task`` with ``runner`` (within ``around``: a step's worktree); tell
        ``reply(result)`` to ``reply_to``. Returns the task's cancel event."""
        cancel = threading.Event()
        with self._lock:
            self._cancels[task.id] = cancel
            for owner in _owners(task):
                self._live.setdefault(owner, set()).add(task.id)

        def run() -> None:
            try:
                result = _run_around(around, task, cancel) or _run_guarded(
                    runner, task, cancel, self._process_started
                )
                if around is not None:
                    result = _finish_around(around, task, result)
                try:
                    reply_to.tell(reply(result))
                except pykka.ActorDeadError:
                    self.record_orphan(task.id, result)
            finally:
                # Only now: "idle" must mean every report has reached an actor or the
                # database.
                with self._lock:
                    self._forget(task)
                    self._idle.notify_all()

        if not self._submit(self.tasks, run):
            with self._lock:
                self._forget(task)
            self.record_orphan(task.id, NOT_STARTED)
        return cancel

    def _forget(self, task: Task) -> None:
        """Under the lock: ``task`` runs no more."""
        self._cancels.pop(task.id, None)
        for owner in _owners(task):
            held = self._live.get(owner)
            if held is not None:
                held.discard(task.id)
                if not held:
                    del self._live[owner]

    def evaluate(
        self,
        job: Callable[[], Judgement],
        reply_to: pykka.ActorRef[Any],
        reply: Callable[[Judgement], Any],
    ) -> None:
        # A verifier's sys.exit fails its attempt only: a red judgement.
        self._reply(self.evaluations, job, crashed_judgement, reply_to, reply, "an evaluation")

    def stop_stale_agent(
        self,
        task: Task,
        grace_s: float,
        reply_to: pykka.ActorRef[Any],
        reply: Callable[[StaleAgentCheck], Any],
    ) -> None:
        """Make sure the agent of ``task`` (an engine now gone ran it) is gone; tell
        ``reply(check)`` to ``reply_to``. A check that fails says why, as a value."""
        recorded = recorded_process(task)

        def failed(exc: BaseException) -> StaleAgentCheck:
            return StaleAgentCheck(
                outcome=StaleOutcome.FAILED,
                recorded=recorded,
                host=this_host(),
                detail=f"the check failed: {exc!r}",
            )

        # Its own pool (shut down: the next engine checks).
        self._reply(
            self.stale_checks,
            lambda: stop_stale_agent(recorded, grace_s=grace_s),
            failed,
            reply_to,
            reply,
            f"the check for the old agent of task {task.id}",
        )

    def merge(
        self,
        job: Callable[[], Any],
        reply_to: pykka.ActorRef[Any],
        reply: Callable[[Any], Any],
    ) -> None:
        """Run a git job (a step's merge) on the evaluation pool; whatever it raises
        comes back as its one-line reason, a string."""
        self._reply(self.evaluations, job, _one_line, reply_to, reply, "a merge")

    def _reply(
        self,
        pool: ThreadPoolExecutor,
        job: Callable[[], T],
        crashed: Callable[[BaseException], T],
        reply_to: pykka.ActorRef[Any],
        reply: Callable[[T], Any],
        what: str,
    ) -> None:
        """Run ``job`` on ``pool`` and tell ``reply(value)`` to ``reply_to``; whatever
        it raises (``SystemExit`` too) becomes the value ``crashed(exc)``."""

        def run() -> None:
            try:
                value = job()
            except BaseException as exc:
                log.exception("%s failed", what)
                value = crashed(exc)
            try:
                reply_to.tell(reply(value))
            except pykka.ActorDeadError:
                log.debug("dropped %s: its actor has stopped", what)

        self._submit(pool, run)

    def background(self, job: Callable[[], None], *, what: str) -> None:
        """Run ``job`` on the evaluation pool; what it raises is logged, never lost."""

        token = object()
        with self._lock:
            self._background.add(token)

        def run() -> None:
            try:
                job()
            except BaseException:
                log.exception("%s failed", what)
            finally:
                with self._lock:
                    self._background.discard(token)
                    self._idle.notify_all()

        if not self._submit(self.evaluations, run):
            with self._lock:
                self._background.discard(token)

    def background_running(self) -> bool:
        with self._lock:
            return bool(self._background)

    def wait_background(self, timeout: float) -> bool:
        """Wait until every background job (a directive's wrap-up) has ended."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._background, max(0.0, timeout))

    def live_tasks(self, of: uuid.UUID | None = None) -> frozenset[uuid.UUID]:
        """Tasks whose agents run in this engine now: those of the directive or step
        ``of``, else all. A state keeps the set it was read with, so each keeps only its
        own: all of them, in every step's state, grew with the square of the steps."""
        with self._lock:
            if of is None:
                return frozenset(self._cancels)
            return frozenset(self._live.get(of, ()))

    def cancel_all(self) -> int:
        with self._lock:
            cancels = list(self._cancels.values())
        for cancel in cancels:
            cancel.set()
        return len(cancels)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every task job has reported; False when ``timeout`` ran out first."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._cancels, max(0.0, timeout))

    def running_count(self) -> int:
        with self._lock:
            return len(self._cancels)

    def shutdown(self) -> None:
        """Start no new job; jobs still running end on their own (their threads are
        the pools', which the interpreter joins at exit)."""
        self._closed = True
        self.tasks.shutdown(wait=False, cancel_futures=True)
        self.evaluations.shutdown(wait=False, cancel_futures=True)
        self.stale_checks.shutdown(wait=False, cancel_futures=True)

    def _submit(self, pool: ThreadPoolExecutor, run: Callable[[], None]) -> bool:
        try:
            pool.submit(run)
        except RuntimeError:  # shut down: the step is taken up again on recovery
            log.info("engine shutting down: job not started")
            return False
        return True

    def _process_started(self, task: Task, process: SupervisedProcess) -> None:
        """Never raises into the runner: a pid not recorded costs only the check a
        recovering engine could have made."""
        if self._started is None:
            return
        try:
            self._started(task, process)
        except Exception:
            log.exception("could not record the processes of task %s", task.id)

    def record_orphan(self, task_id: uuid.UUID, result: TaskResult) -> None:
        """Store a report directly: its actor has stopped, or could not store it."""
        try:
            self._orphaned(task_id, result)
        except Exception:
            log.exception("could not record the report of task %s", task_id)


def _owners(task: Task) -> tuple[uuid.UUID, ...]:
    """What ``live_tasks`` files a task under: its directive, and its step if any."""
    return (task.directive_id,) if task.step_id is None else (task.directive_id, task.step_id)


class TaskAround(Protocol):
    """Work before and after a task's agent, in its job (a step's worktree)."""

    def prepare(self, task: Task) -> TaskResult | None:
        """None when the agent may run; else the attempt's (failed) result."""

    def finish(self, task: Task, result: TaskResult) -> TaskResult: ...


def _run_around(
    around: TaskAround | None, task: Task, cancel: threading.Event
) -> TaskResult | None:
    if around is None:
        return None
    if cancel.is_set():
        return NOT_STARTED
    try:
        return around.prepare(task)
    except BaseException as exc:  # a bug must fail the attempt, not lose its report
        log.exception("preparing task %s failed", task.id)
        return TaskResult(status=TaskStatus.FAILED, error=repr(exc), output_tail=repr(exc))


def _finish_around(around: TaskAround, task: Task, result: TaskResult) -> TaskResult:
    try:
        return around.finish(task, result)
    except BaseException as exc:
        log.exception("finishing task %s failed", task.id)
        return attrs.evolve(result, status=TaskStatus.FAILED, error=repr(exc))


def _run_guarded(
    runner: TaskRunner,
    task: Task,
    cancel: threading.Event,
    started: Started,
) -> TaskResult:
    started_at = time.time()
    try:
        if isinstance(runner, ProcessRunner):
            return runner.run_process(task, cancel, lambda process: started(task, process))
        return runner.run(task, cancel)
    except BaseException as exc:  # SystemExit from an embedded agent fails its attempt
        log.exception("task job failed")
        message = f"the agent raised {exc!r}"
        return TaskResult(
            status=TaskStatus.FAILED,
            error=message,
            output_tail=message,
            started_at=started_at,
            finished_at=time.time(),
        )


def recorded_process(task: Task) -> RecordedProcess:
    """What the task's row says of its processes."""
    return RecordedProcess(
        task_id=str(task.id),
        host=task.host,
        pid=task.pid,
        pgid=task.pgid,
        started_at=_seconds(task.process_started_at),
        supervisor_pid=task.supervisor_pid,
        supervisor_started_at=_seconds(task.supervisor_started_at),
    )


def _seconds(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


NOT_STARTED = TaskResult(
    status=TaskStatus.CANCELLED,
    output_tail="the engine was shutting down; the agent was not started",
)


def _one_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else repr(exc)


def crashed_judgement(exc: BaseException) -> Judgement:
    """Red: verification could not run. The step is reworked as for failing checks."""
    what = f"the verifiers crashed: {exc!r}"
    return red_judgement(
        "verification",
        what,
        summary=what,
        rework_instructions=f"Verification could not run ({what}).",
    )
