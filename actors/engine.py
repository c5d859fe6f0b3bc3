"""The Engine: facade and root supervisor (DESIGN §3, §10).

``Engine.start(config)`` opens the database (running migrations), starts the
event bus, the worker pools and the tick thread, and recovers every live
directive. Each live directive has one DirectiveActor; the engine forwards
calls to it with ``ask`` (so a refused transition raises in the caller), and
starts a fresh actor from the database whenever none is running.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import attrs
import pykka

from directorate.persistence import ops
from directorate.persistence.database import Database
from directorate.persistence.errors import (
    DirectorateError,
    EngineTimeout,
    InvalidInput,
    InvalidTransition,
)
from directorate.persistence.models import (
    Approval,
    Chain,
    Directive,
    DirectiveSpec,
    DirectiveStatus,
    Step,
    Task,
)
from directorate.persistence.validation import check_directory
from directorate.persistence.writer import Committed, Op
from directorate.verifiers.supervised import SupervisedProcess

from . import messages as m
from .bus import Bus
from .context import EngineConfig, EngineContext
from .core.changes import TaskProcessStarted, TaskRecorded
from .directive_actor import DirectiveActor
from .evaluation import check_verifier_config
from .runners import TaskResult, runner_for
from .signals import ApprovalRequired, DirectiveStatusChanged
from .tx import Tx
from .workers import Workers
from .workspace import GitError
from .workspaces import check_repository, start_result_branch
from .writes import write

log = logging.getLogger(__name__)

PROCESS_RECORD_WAIT_S = 5.0
"""How long a starting agent's runner waits for its pid to be committed."""


@attrs.frozen(kw_only=True)
class Snapshot:
    """A directive as it stands: its record, current chain, steps, pending approvals."""

    directive: Directive
    chain: Chain | None
    steps: list[Step]
    pending_approvals: list[Approval]


@attrs.frozen(kw_only=True)
class ShutdownReport:
    """What a shutdown did, and what it had to leave at its deadline."""

    cancelled_tasks: int
    directives: int
    agents_left: int = 0
    """Agents still running at the deadline (their steps run again on recovery)."""
    actors_left: int = 0
    """Actors that had not stopped at the deadline."""
    unwritten: tuple[str, ...] = ()
    """Writes given up because the database was away (the directive each was for and
    its events); recovery takes the directives up from what was written."""

    def describe(self) -> str:
        text = f"stopped {self.directives} directive actor(s)"
        if not self.cancelled_tasks:
            text += "; no task was running"
        else:
            text += (
                f"; cancelled {self.cancelled_tasks} running task(s), which run again as a "
                "new attempt when an engine recovers them"
            )
        if self.agents_left or self.actors_left:
            text += (
                f"; left at the deadline: {self.agents_left} agent(s) still stopping, "
                f"{self.actors_left} actor(s) not stopped"
            )
        if self.unwritten:
            shown = "; ".join(self.unwritten[:10]) + ("; ..." if len(self.unwritten) > 10 else "")
            text += (
                f"; {len(self.unwritten)} write(s) not written, the database being "
                f"unavailable: {shown}"
            )
        return text


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._changed = threading.Condition()
        self._bus = Bus()
        self._bus.listeners.append(self._on_published)
        try:
            # The engine rides out an outage: its writes wait for the database.
            self.db = Database.open(
                config.dsn, on_commit=self._bus.on_commit, write_patience_s=None
            )
        except BaseException:
            self._bus.stop()
            raise
        self._workers = Workers(
            config.max_concurrent_tasks,
            config.max_concurrent_evaluations,
            orphaned=self._record_orphan,
            started=self._record_process,
        )
        halted = threading.Event()
        self._ctx = EngineContext(
            db=self.db,
            reads=self.db.reads.waiting(halted),
            halted=halted,
            config=config,
            workers=self._workers,
            settings=config.settings(),
            on_actor_stopped=self._forget,
        )
        self._actors: dict[uuid.UUID, pykka.ActorRef[Any]] = {}
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._ticker = threading.Thread(
            target=self._tick_loop, name="directorate-tick", daemon=True
        )
        self._ticker.start()

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def start(cls, config: EngineConfig | None = None) -> Engine:
        engine = cls(config or EngineConfig())
        if engine.config.recover:
            engine.recover()
        return engine

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def recover(self) -> list[uuid.UUID]:
        """Start an actor for every directive in planning, active or paused (DESIGN §9)."""
        recovered = []
        for directive in self.db.reads.live_directives():
            with self._lock:
                if directive.id in self._actors:
                    continue
                self._actors[directive.id] = self._spawn(directive.id, m.Recover())
            recovered.append(directive.id)
        return recovered

    def shutdown(self, timeout: float = 60.0) -> ShutdownReport:
        """Stop within one deadline: cancel running agents (their steps run again on
        recovery) and let them report, stop every actor, commit what is pending, close
        the database. Whatever is still running at the deadline is left, and said."""
        if self._closing.is_set():
            return ShutdownReport(cancelled_tasks=0, directives=0)
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        self._closing.set()
        self._ctx.halted.set()
        # If the database is away, writes stop waiting for it in time to stop the
        # rest before the deadline (and are reported as not written).
        self.db.writer.give_up_by(deadline - 0.2 * timeout)
        with self._lock:
            refs = list(self._actors.values())
            self._actors.clear()
        for ref in refs:
            _tell(ref, m.Halt())
        cancelled = self._workers.cancel_all()
        # Let the cancelled agents die and their reports reach their actors, so the
        # database says "cancelled", not "running", for work that is gone.
        agents_left = 0 if self._workers.wait_idle(left()) else self._workers.running_count()
        with self._ctx.lock:
            steps = list(self._ctx.step_actors.values())
        stopping = [ref.stop(block=False) for ref in [*refs, *steps]]
        actors_left = 0
        for future in stopping:
            try:
                future.get(timeout=left())
            except pykka.Timeout:
                actors_left += 1
            except pykka.ActorDeadError:
                pass
        # A finished directive's delivery and cleanup (started by its actor, which has
        # stopped now): let them end, and be recorded.
        self._workers.wait_background(left())
        self._workers.shutdown()
        self._ticker.join(timeout=min(left(), 5.0))
        try:
            unwritten = self.db.close(timeout=left())
        finally:
            self._bus.stop(timeout=max(left(), 1.0))
        report = ShutdownReport(
            cancelled_tasks=cancelled,
            directives=len(refs),
            agents_left=agents_left,
            actors_left=actors_left,
            unwritten=unwritten,
        )
        log.info("engine shut down: %s", report.describe())
        return report

    # ----------------------------------------------------------------- directives

    def submit(self, spec: DirectiveSpec) -> uuid.UUID:
        """Create a directive (draft) from a spec; returns its id.

        ``InvalidInput`` names the first bad field, and then nothing is written.
        """
        spec.validate()
        # Here rather than in validate(): the spec is data, this is about this machine.
        check_directory("local_path", spec.local_path)
        check_repository(spec)
        check_verifier_config(spec.verifiers, spec.local_path)
        for step in spec.steps or []:
            check_verifier_config(step.verifiers, spec.local_path, where=f"steps.{step.name}")
        from directorate.persistence.convert import spec_converter

        directive_id = uuid.uuid4()
        values = spec_converter.unstructure(spec)
        steps = values.pop("steps")
        values["verifier_config"] = values.pop("verifiers")
        values["explicit_steps"] = steps
        values = {k: v for k, v in values.items() if v is not None}
        tx = Tx(directive_id)
        tx.op(ops.insert("directives", id=directive_id, owner_id=self.config.owner_id, **values))
        tx.event("directive_created", {"title": spec.title})
        tx.commit(self.db)
        return directive_id

    def start_directive(self, directive_id: uuid.UUID) -> DirectiveStatus:
        directive_id = as_id(directive_id, "directive")
        directive = self.db.reads.directive(directive_id)
        if directive.status is not DirectiveStatus.DRAFT:
            raise InvalidTransition(directive.status, DirectiveStatus.PLANNING, "directive")
        # Before anything is committed: a start refused for want of a runner changes nothing.
        runner_for(directive.agent, self.config.runner)
        if directive.result_branch is None:
            self._start_workspace(directive)
        return self._ask_status(directive_id, m.Start(), spawn=True)

    def _start_workspace(self, directive: Directive) -> None:
        """Make and record the directive's result branch (git, so here, on the caller's
        thread, not an actor's). A start tried again reuses the branch."""
        try:
            started = start_result_branch(directive)
        except GitError as exc:
            raise InvalidInput(f"workspace: {exc}") from None
        if started is None:
            return
        tx = Tx(directive.id)
        tx.op(
            Op(
                "UPDATE directives SET repository = %s, base_ref = %s, base_sha = %s,"
                " result_branch = %s WHERE id = %s AND status = 'draft'",
                (
                    started.repository,
                    started.base_ref,
                    started.base_sha,
                    started.result_branch,
                    directive.id,
                ),
                guard=True,
            )
        )
        tx.event(
            "workspace_created",
            {
                "repository": started.repository,
                "base": started.base_ref or started.base_sha,
                "base_sha": started.base_sha,
                "branch": started.result_branch,
            },
        )
        if not isinstance(tx.commit(self.db), Committed):
            status = self.db.reads.directive(directive.id).status
            raise InvalidTransition(status, DirectiveStatus.PLANNING, "directive")

    def pause(self, directive_id: uuid.UUID, *, by: str | None = None) -> DirectiveStatus:
        return self._ask_status(directive_id, m.Pause(by=by))

    def resume(self, directive_id: uuid.UUID, *, by: str | None = None) -> DirectiveStatus:
        return self._ask_status(directive_id, m.Resume(by=by))

    def stop_directive(self, directive_id: uuid.UUID, *, by: str | None = None) -> DirectiveStatus:
        return self._ask_status(directive_id, m.Stop(by=by))

    def regenerate_chain(
        self, directive_id: uuid.UUID, reason: str, *, by: str | None = None
    ) -> uuid.UUID | None:
        """Supersede the chain and plan a new one; returns the superseded chain's id."""
        old = self._ask(directive_id, m.Regenerate(reason=reason, by=by))
        return old if isinstance(old, uuid.UUID) else None

    def approve(
        self,
        approval_id: uuid.UUID,
        responded_by: str = "user",
        note: str | None = None,
        **raise_limit: float,
    ) -> None:
        self._answer(approval_id, True, responded_by, note, raise_limit or None)

    def deny(
        self, approval_id: uuid.UUID, responded_by: str = "user", note: str | None = None
    ) -> None:
        self._answer(approval_id, False, responded_by, note, None)

    def _answer(
        self,
        approval_id: uuid.UUID,
        approved: bool,
        by: str,
        note: str | None,
        raise_limit: dict[str, float] | None,
    ) -> None:
        approval_id = as_id(approval_id, "approval")
        approval = self.db.reads.approval(approval_id)
        self._ask(
            approval.directive_id,
            m.AnswerApproval(approval_id, approved, by, note, raise_limit),
        )

    def snapshot(self, directive_id: uuid.UUID) -> Snapshot:
        directive_id = as_id(directive_id, "directive")
        directive = self.db.reads.directive(directive_id)
        chain = self.db.reads.current_chain(directive_id)
        return Snapshot(
            directive=directive,
            chain=chain,
            steps=self.db.reads.steps(chain.id) if chain else [],
            pending_approvals=self.db.reads.pending_approvals(directive_id),
        )

    def wait(self, directive_id: uuid.UUID, timeout: float | None = None) -> DirectiveStatus:
        """Block until the directive is terminal, paused, or waits on a human; returns
        its status then (or when ``timeout`` runs out)."""
        directive_id = as_id(directive_id, "directive")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._changed:
                # These reads wait out an outage: a directive goes on meanwhile.
                directive = self._ctx.reads.directive(directive_id)
                if directive.status.terminal or directive.status is DirectiveStatus.PAUSED:
                    return directive.status
                if self._ctx.reads.pending_approvals(directive_id):
                    return directive.status
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return directive.status
                # Woken by the bus; the timeout also covers changes made by other processes.
                self._changed.wait(timeout=min(remaining or 1.0, 1.0))

    # ----------------------------------------------------------------- internals

    def _ask_status(
        self, directive_id: uuid.UUID, message: Any, *, spawn: bool = False
    ) -> DirectiveStatus:
        status = self._ask(directive_id, message, spawn=spawn)
        assert isinstance(status, DirectiveStatus), status
        return status

    def _ask(self, directive_id: uuid.UUID, message: Any, *, spawn: bool = False) -> object:
        directive_id = as_id(directive_id, "directive")
        if self._closing.is_set():
            raise InvalidInput("the engine is shutting down")
        with self._lock:
            ref = self._actors.get(directive_id)
            if ref is None or not ref.is_alive():
                directive = self.db.reads.directive(directive_id)  # NotFound for a bad id
                # A draft has nothing to control but its start (and no actor to leave behind).
                draft_not_started = directive.status is DirectiveStatus.DRAFT and not (
                    spawn or isinstance(message, m.Stop)
                )
                if directive.status.terminal or draft_not_started:
                    raise InvalidTransition(directive.status, _target(message), "directive")
                ref = self._spawn(directive_id, None if spawn else m.Recover())
                self._actors[directive_id] = ref
        try:
            return ref.ask(message, timeout=self.config.ask_timeout_s)
        except pykka.ActorDeadError:
            directive = self.db.reads.directive(directive_id)
            raise InvalidTransition(directive.status, _target(message), "directive") from None
        except pykka.Timeout as exc:
            raise EngineTimeout(
                f"directive {directive_id} did not answer {type(message).__name__.lower()} "
                f"within {self.config.ask_timeout_s:g} s; it may still apply it"
            ) from exc

    def _spawn(self, directive_id: uuid.UUID, first: Any) -> pykka.ActorRef[Any]:
        ref = DirectiveActor.start(self._ctx, directive_id)
        if first is not None:
            ref.tell(first)
        return ref

    def _forget(self, directive_id: uuid.UUID) -> None:
        with self._lock:
            ref = self._actors.get(directive_id)
            if ref is not None and not ref.is_alive():
                self._actors.pop(directive_id, None)

    def _on_published(self, event: Any) -> None:
        if isinstance(event, DirectiveStatusChanged | ApprovalRequired):
            with self._changed:
                self._changed.notify_all()

    def _tick_loop(self) -> None:
        """Tick only the directives that need it (an approval expired, the wall-time
        limit passed): one query for all, instead of a load per directive per tick."""
        while not self._closing.wait(self.config.tick_interval_s):
            with self._lock:
                live = dict(self._actors)
            if not live:
                continue
            try:
                due = self._ctx.reads.due_directives(list(live))
            except DirectorateError as exc:
                log.warning("tick skipped: %s", exc)
                continue
            for directive_id in due:
                ref = live.get(directive_id)
                if ref is not None:
                    _tell(ref, m.Tick())

    def _record_orphan(self, task_id: uuid.UUID, result: TaskResult) -> None:
        """A task reported after its actor stopped: store the report (and its cost)."""
        task = self._ctx.reads.task(task_id)
        step = self._ctx.reads.step(task.step_id) if task.step_id else None
        changes = [TaskRecorded(task_id=task_id, result=result, step=step)]
        write(task.directive_id, changes).tx.commit(self.db)

    def _record_process(self, task: Task, process: SupervisedProcess) -> None:
        """An agent runs: record its processes in the task's row. Waited for only
        briefly: the runner has an agent to watch (its timeout, a cancel), and the
        write stays queued and commits even if this gives up on it."""
        change = TaskProcessStarted(task_id=task.id, process=process)
        future = write(task.directive_id, [change]).tx.submit(self.db)
        try:
            future.get(timeout=PROCESS_RECORD_WAIT_S)
        except pykka.Timeout:
            log.warning(
                "task %s: the record of its agent's pid %d is not committed yet",
                task.id,
                process.pid,
            )

    def live_actor_count(self) -> int:
        with self._lock:
            return sum(1 for ref in self._actors.values() if ref.is_alive())


def as_id(value: object, what: str) -> uuid.UUID:
    """An id given as a UUID or its text; ``InvalidInput`` for anything else."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"not a {what} id: {str(value)[:80]!r}") from None


def _tell(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        log.debug("dropped %s: its actor has stopped", type(message).__name__)


def _target(message: Any) -> str:
    return {
        m.Start: "planning",
        m.Pause: "paused",
        m.Resume: "active",
        m.Stop: "cancelled",
    }.get(type(message), type(message).__name__.lower())
