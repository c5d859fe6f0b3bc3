"""The directive actor's core: its state, the lifecycle requests (start, recover,
pause, resume, stop), the steps' reports, planning and the chain, status changes.

Judgement and escalation (approvals, circuit breakers, blocked chains,
regeneration, the directive review) are ``directive_actor.DirectiveActor``, built
on this class; the hooks they provide are declared here.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import attrs
import pykka

from directorate.persistence import ops
from directorate.persistence.errors import (
    InvalidInput,
    InvalidTransition,
    NotFound,
)
from directorate.persistence.models import (
    DIRECTIVE_TRANSITIONS,
    ActorType,
    ApprovalType,
    Chain,
    Directive,
    DirectiveStatus,
    Severity,
    Step,
    StepSpec,
    StepStatus,
    Task,
    TaskKind,
    TaskStatus,
    layered_layout,
)
from directorate.persistence.validation import strip_nul
from directorate.persistence.writer import Conflict

from . import messages as m
from .context import EngineContext
from .escalation import (
    Trip,
    check_breakers,
)
from .planning import default_chain, planning_instructions, read_plan
from .runners import TaskResult, runner_for
from .signals import (
    ApprovalRequired,
    ChainRegenerated,
    DirectiveStatusChanged,
)
from .step_actor import StepActor, with_suppressed_tell
from .tx import Tx

log = logging.getLogger(__name__)


class DirectiveCore(pykka.ThreadingActor):
    """One directive's state and lifecycle; see ``DirectiveActor``."""

    use_daemon_thread = True

    def __init__(self, ctx: EngineContext, directive_id: uuid.UUID) -> None:
        super().__init__()
        self.ctx = ctx
        self.directive_id = directive_id
        self.directive: Directive = ctx.db.reads.directive(directive_id)
        self.chain: Chain | None = None
        self.steps: dict[uuid.UUID, Step] = {}
        self.step_refs: dict[uuid.UUID, pykka.ActorRef[Any]] = {}
        self.running: set[uuid.UUID] = set()
        self.queued: list[uuid.UUID] = []
        self.blocked: dict[uuid.UUID, str] = {}
        self.planning_task: Task | None = None
        self.planning_cancel: threading.Event | None = None
        self.breaker_open = False
        self.waiting_review: set[uuid.UUID] = set()
        self.carry_over: list[Step] = []
        self.old_chain_id: uuid.UUID | None = None
        self.reviewing = False
        self.finished_plan: tuple[Task, TaskResult] | None = None
        self.restart_steps = False
        """A step actor crashed: start them afresh from the database on resume."""
        self.halted = False
        """The engine is shutting down: nothing new starts."""

    # ----------------------------------------------------------------- plumbing

    def on_receive(self, message: Any) -> Any:
        handler = getattr(self, f"_on_{type(message).__name__}", None)
        if handler is None:
            log.warning("directive %s ignored %r", self.directive_id, message)
            return None
        return handler(message)

    def on_failure(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        self._cancel_everything()
        self._stop_step_actors()
        try:
            self._record_failure_and_pause(f"{exc_type.__name__}: {exc_value}", actor="directive")
        finally:
            self.ctx.on_actor_stopped(self.directive_id)

    def on_stop(self) -> None:
        self._stop_step_actors()
        self.ctx.on_actor_stopped(self.directive_id)

    # ----------------------------------------------------------------- engine requests

    def _on_Start(self, message: m.Start) -> None:
        directive = self.directive
        if directive.status is not DirectiveStatus.DRAFT:
            raise InvalidTransition(directive.status, DirectiveStatus.PLANNING, "directive")
        if directive.explicit_steps:
            tx = self._status_tx(DirectiveStatus.ACTIVE, started_at=datetime.now(UTC))
            chain_id = self._chain_tx(tx, directive.explicit_steps, generation=1, rationale=None)
            tx.event("planning_completed", {"source": "explicit steps", "chain_id": chain_id})
            self._commit_status(tx, DirectiveStatus.ACTIVE, started_at=datetime.now(UTC))
            self._load_chain()
            self._start_step_actors()
        else:
            self._begin_planning(started=True)

    def _on_Recover(self, message: m.Recover) -> None:
        status = self.directive.status
        if status is DirectiveStatus.PLANNING:
            self._resume_planning()
        elif status in (DirectiveStatus.ACTIVE, DirectiveStatus.PAUSED):
            self._load_chain()
            pending = {
                a.approval_type for a in self.ctx.db.reads.pending_approvals(self.directive_id)
            }
            self.breaker_open = ApprovalType.CIRCUIT_BREAKER in pending
            # A review already waiting on a human is not started again.
            self.reviewing = ApprovalType.DIRECTIVE_REVIEW in pending
            self._start_step_actors()
            if status is DirectiveStatus.ACTIVE:
                self._check_finished()
                # Blocked just before the crash, before the escalation was committed.
                asked = {ApprovalType.CHAIN_BLOCKED, ApprovalType.CIRCUIT_BREAKER} & pending
                if self.blocked and not asked:
                    self._after_block()

    def _on_Pause(self, message: m.Pause) -> DirectiveStatus:
        self._transition(DirectiveStatus.PAUSED, actor_id=message.actor_id)
        for step_id in list(self.running):
            with_suppressed_tell(self.step_refs[step_id], m.CancelTask("paused"))
        if self.planning_cancel is not None:
            self.planning_cancel.set()
        return self.directive.status

    def _on_Resume(self, message: m.Resume) -> DirectiveStatus:
        was_planning = self.planning_task is not None or not self.chain
        if self.directive.status is not DirectiveStatus.PAUSED:
            raise InvalidTransition(self.directive.status, DirectiveStatus.ACTIVE, "directive")
        if self.finished_plan is not None:
            task, result = self.finished_plan
            self.finished_plan = None
            self._ingest_plan(task, result)  # paused -> active
            return self.directive.status
        if was_planning and self.chain is None:
            self._transition(DirectiveStatus.PLANNING, actor_id=message.actor_id)
            self._begin_planning(started=False)
            return self.directive.status
        self._transition(DirectiveStatus.ACTIVE, actor_id=message.actor_id)
        if self.restart_steps:
            self._restart_step_actors()
        self._grant_queued()
        self._check_finished()
        return self.directive.status

    def _restart_step_actors(self) -> None:
        """After a step actor crashed: every step actor afresh from the database, as
        on recovery (the survivors hold references to the dead one)."""
        self.restart_steps = False
        self._stop_step_actors()
        self.step_refs.clear()
        self.running.clear()
        self.queued.clear()
        self.blocked.clear()
        self.waiting_review.clear()
        self._load_chain()
        self._start_step_actors()

    def _on_Stop(self, message: m.Stop) -> DirectiveStatus:
        now = datetime.now(UTC)
        tx = self._status_tx(DirectiveStatus.CANCELLED, actor_id=message.actor_id, completed_at=now)
        # The step actors stop with us, so their agents' reports will not arrive:
        # record the running tasks as cancelled here.
        tx.op(ops.cancel_running_tasks(self.directive_id))
        tx.op(ops.cancel_pending_approvals(self.directive_id))
        self._commit_status(tx, DirectiveStatus.CANCELLED, completed_at=now)
        self._cancel_everything()
        self.stop()
        return self.directive.status

    def _on_Halt(self, message: m.Halt) -> int:
        """Engine shutdown: cancel running agents and start nothing new; the database
        keeps the state."""
        self.halted = True
        return self._cancel_everything()

    # ----------------------------------------------------------------- step reports

    def _on_StepReady(self, message: m.StepReady) -> None:
        self.running.discard(message.step_id)
        if message.step_id not in self.queued:
            self.queued.append(message.step_id)
        self._grant_queued()

    def _on_StepIdle(self, message: m.StepIdle) -> None:
        self.running.discard(message.step_id)

    def _on_StepWaiting(self, message: m.StepWaiting) -> None:
        self.running.discard(message.step_id)
        self.waiting_review.add(message.step_id)

    def _on_StepPassed(self, message: m.StepPassed) -> None:
        self.running.discard(message.step_id)
        step = self.steps.get(message.step_id)
        if step is not None:
            self.steps[message.step_id] = attrs.evolve(step, status=StepStatus.PASSED)
        self.step_refs.pop(message.step_id, None)
        self._check_finished()

    def _on_StepBlocked(self, message: m.StepBlocked) -> None:
        self.running.discard(message.step_id)
        self.blocked[message.step_id] = message.reason
        step = self.steps.get(message.step_id)
        if step is not None:
            self.steps[message.step_id] = attrs.evolve(step, status=StepStatus.BLOCKED)
        self.waiting_review.discard(message.step_id)
        self._after_block()

    def _on_CostReported(self, message: m.CostReported) -> None:
        # Reports from parallel steps may arrive out of order: the total only grows.
        total = max(self.directive.total_cost_usd, message.total_cost_usd)
        self.directive = attrs.evolve(self.directive, total_cost_usd=total)
        if self.directive.status is DirectiveStatus.ACTIVE and not self.breaker_open:
            trip = check_breakers(self.directive)
            if trip is not None and trip.limit == "max_total_cost_usd":
                self._trip(trip)

    def _on_StepFailed(self, message: m.StepFailed) -> None:
        self.running.discard(message.step_id)
        self.step_refs.pop(message.step_id, None)
        self.restart_steps = True
        self._record_failure_and_pause(message.error, actor="step", step_id=message.step_id)

    def _on_PlanningFinished(self, message: m.PlanningFinished) -> None:
        task = self.planning_task
        if task is None or task.id != message.task_id:
            self._finish_stale_planning(message)
            return
        result = message.result
        if isinstance(result, BaseException):
            result = TaskResult(
                status=TaskStatus.FAILED,
                exit_code=None,
                error=repr(result),
                output_tail=repr(result),
                started_at=0.0,
                finished_at=0.0,
            )
        self.planning_task = None
        self.planning_cancel = None
        if result.status is TaskStatus.CANCELLED:
            self._finish_task(task, result)
            return  # paused or stopped while planning; resume plans again
        if self.directive.status is DirectiveStatus.PAUSED:
            self.finished_plan = (task, result)  # paused as it finished: ingest on resume
            return
        self._ingest_plan(task, result)

    def _finish_stale_planning(self, message: m.PlanningFinished) -> None:
        """A planning task given up on (paused, then resumed before it answered) still
        reports: record its end and its cost, once."""
        if isinstance(message.result, BaseException):
            return
        try:
            stale = self.ctx.db.reads.task(message.task_id)
        except NotFound:
            return
        if not stale.status.finished:
            self._finish_task(stale, message.result)

    # ----------------------------------------------------------------- planning

    def _begin_planning(self, *, started: bool, replan_context: str | None = None) -> None:
        directive = self.directive
        attempt = 1 + sum(
            1
            for t in self.ctx.db.reads.tasks_of_directive(directive.id)
            if t.kind is TaskKind.PLANNING
        )
        task_id = uuid.uuid4()
        log_dir = self.ctx.config.resolved_log_dir() / str(directive.id)
        task = Task(
            id=task_id,
            directive_id=directive.id,
            kind=TaskKind.PLANNING,
            attempt=attempt,
            status=TaskStatus.RUNNING,
            instructions=planning_instructions(directive, replan_context=replan_context),
            workdir=directive.local_path or str(log_dir),
            log_path=str(log_dir / f"planning-{attempt}-{task_id.hex[:8]}.log"),
            plan_file=str(log_dir / f"plan-{task_id.hex[:8]}.json"),
        )
        if started:
            tx = self._status_tx(DirectiveStatus.PLANNING, started_at=datetime.now(UTC))
        else:
            tx = Tx(directive.id)
        tx.op(
            ops.insert(
                "tasks",
                id=task.id,
                directive_id=directive.id,
                kind=str(task.kind),
                attempt=task.attempt,
                status=str(task.status),
                instructions=task.instructions,
                workdir=task.workdir,
                log_path=task.log_path,
                plan_file=task.plan_file,
                started_at=datetime.now(UTC),
            )
        )
        tx.event(
            "planning_started",
            {"task_id": task.id, "message": "Planning task spawned, waiting for chain generation"},
        )
        if started:
            self._commit_status(tx, DirectiveStatus.PLANNING, started_at=datetime.now(UTC))
        elif isinstance(tx.commit(self.ctx.db), Conflict):
            raise InvalidTransition(self.directive.status, DirectiveStatus.PLANNING, "directive")
        self._dispatch_planning(task)

    def _dispatch_planning(self, task: Task) -> None:
        self.planning_task = task
        self.planning_cancel = threading.Event()
        runner = self._runner()
        self.ctx.workers.run_task(
            lambda cancel: runner.run(task, cancel),
            self.actor_ref,
            lambda result: m.PlanningFinished(task.id, result),
            self.planning_cancel,
        )

    def _resume_planning(self) -> None:
        """After a restart in planning: the old planning agent is gone; plan again."""
        tx = Tx(self.directive_id)
        for task in self.ctx.db.reads.tasks_of_directive(self.directive_id):
            if task.kind is TaskKind.PLANNING and not task.status.finished:
                tx.op(
                    ops.transition(
                        "tasks",
                        task.id,
                        [TaskStatus.QUEUED, TaskStatus.RUNNING],
                        str(TaskStatus.CANCELLED),
                        summary="the engine running this task stopped",
                        _now=["finished_at"],
                    )
                )
        tx.event(
            "planning_recovered",
            {"message": "planning again after an engine restart"},
            severity=Severity.WARNING,
        )
        tx.commit(self.ctx.db)
        context = None
        chains = self.ctx.db.reads.chains(self.directive_id)
        if chains and self.ctx.db.reads.current_chain(self.directive_id) is None:
            # Restarted while regenerating: what carried over was only in memory.
            old = max(chains, key=lambda c: c.generation)
            steps = self.ctx.db.reads.steps(old.id)
            self.carry_over = [s for s in steps if s.status is StepStatus.PASSED]
            self.old_chain_id = old.id
            blocked = {s.name: "blocked" for s in steps if s.status is StepStatus.BLOCKED}
            reason = "regenerating when the engine restarted"
            context = replan_context(reason, [s.name for s in self.carry_over], blocked)
        self._begin_planning(started=False, replan_context=context)

    def _ingest_plan(self, task: Task, result: TaskResult) -> None:
        directive = self.directive
        reason = None
        steps: list[StepSpec]
        carried = {s.name: s for s in self.carry_over}
        if result.status is not TaskStatus.SUCCEEDED:
            reason = f"Planning task {result.status}"
            steps = default_chain(directive)
        else:
            try:
                steps = read_plan(task.plan_file, known=set(carried))
            except InvalidInput as exc:
                reason = str(exc)
                steps = default_chain(directive)
        tx = self._status_tx(DirectiveStatus.ACTIVE)
        self._finish_task(task, result, tx=tx)
        generation = self.directive.chain_generation_count + 1
        chain_id = self._chain_tx(
            tx, steps, generation=generation, rationale=reason, carried=carried
        )
        if reason:
            tx.event(
                "plan_rejected",
                {"reason": reason, "fallback": "default chain research -> implement -> test"},
                severity=Severity.WARNING,
            )
        tx.event(
            "planning_completed",
            {"success": reason is None, "chain_id": chain_id, "steps": [s.name for s in steps]},
        )
        if self.old_chain_id is not None:
            tx.event(
                "chain_regenerated",
                {
                    "old_chain_id": self.old_chain_id,
                    "new_chain_id": chain_id,
                    "generation": generation,
                    "carried_over": sorted(carried),
                },
            )
            tx.signal(
                ChainRegenerated(
                    directive_id=self.directive_id,
                    old_chain_id=self.old_chain_id,
                    new_chain_id=chain_id,
                )
            )
        self._commit_status(tx, DirectiveStatus.ACTIVE)
        self.carry_over = []
        self.old_chain_id = None
        self._load_chain()
        self._start_step_actors()
        self._check_finished()

    def _finish_task(self, task: Task, result: TaskResult, *, tx: Tx | None = None) -> None:
        own = tx is None
        tx = tx or Tx(self.directive_id)
        cost = max(0.0, float(result.cost_usd or 0.0))
        tx.op(
            ops.transition(
                "tasks",
                task.id,
                [TaskStatus.QUEUED, TaskStatus.RUNNING],
                str(result.status),
                exit_code=result.exit_code,
                cost_usd=cost,
                summary=strip_nul(result.summary) or None,
                output_tail=strip_nul(result.output_tail or ""),
                _now=["finished_at"],
            )
        )
        tx.op(ops.add_cost(self.directive_id, cost))
        tx.event(
            "task_finished",
            {
                "task_id": task.id,
                "kind": "planning",
                "status": str(result.status),
                "exit_code": result.exit_code,
                "cost_usd": cost,
            },
        )
        self.directive = attrs.evolve(
            self.directive, total_cost_usd=self.directive.total_cost_usd + cost
        )
        if own:
            tx.commit(self.ctx.db)

    def _chain_tx(
        self,
        tx: Tx,
        steps: list[StepSpec],
        *,
        generation: int,
        rationale: str | None,
        carried: dict[str, Step] | None = None,
    ) -> uuid.UUID:
        """Insert a chain and its steps; ``carried`` passed steps of the superseded
        chain join it as passed, replacing planned steps of the same name."""
        directive = self.directive
        carried = carried or {}
        chain_id = uuid.uuid4()
        tx.op(
            ops.insert(
                "directive_chains",
                id=chain_id,
                directive_id=directive.id,
                generation=generation,
                name=f"{_slug(directive.title)}-chain",
                description=f"Execution plan for: {directive.goal}",
                rationale=rationale,
            )
        )
        tx.op(ops.update("directives", directive.id, chain_generation_count=generation))
        planned = [s for s in steps if s.name not in carried]
        kept = [
            StepSpec(
                name=s.name,
                step_type=s.step_type,
                description=s.description,
                task_plan=s.task_plan,
                verifiers=s.verifier_config,
            )
            for s in carried.values()
        ]
        everything = kept + planned
        ids = {s.name: uuid.uuid4() for s in everything}
        positions = layered_layout(everything)
        for spec in everything:
            x, y = positions[spec.name]
            old = carried.get(spec.name)
            extra: dict[str, Any] = {}
            if old is not None:
                extra = {
                    "status": str(StepStatus.PASSED),
                    "attempt": old.attempt,
                    "rework_count": old.rework_count,
                    "confidence_score": old.confidence_score,
                    "confidence_level": str(old.confidence_level) if old.confidence_level else None,
                    "last_evaluation_id": old.last_evaluation_id,
                }
            tx.op(
                ops.insert(
                    "chain_steps",
                    id=ids[spec.name],
                    chain_id=chain_id,
                    directive_id=directive.id,
                    name=spec.name,
                    step_type=str(spec.step_type),
                    description=spec.description,
                    task_plan=spec.task_plan or spec.description or None,
                    depends_on=[ids[d] for d in spec.depends_on if d in ids],
                    requirement_ids=list(spec.requirement_ids),
                    verifier_config=spec.verifiers,
                    editor_x=x,
                    editor_y=y,
                    **extra,
                )
            )
        tx.event(
            "chain_created",
            {
                "chain_id": chain_id,
                "generation": generation,
                "steps": [s.name for s in everything],
                "carried_over": sorted(carried),
            },
        )
        self.directive = attrs.evolve(directive, chain_generation_count=generation)
        return chain_id

    # ----------------------------------------------------------------- steps

    def _load_chain(self) -> None:
        self.chain = self.ctx.db.reads.current_chain(self.directive_id)
        steps = self.ctx.db.reads.steps(self.chain.id) if self.chain else []
        self.steps = {s.id: s for s in steps}

    def _start_step_actors(self) -> None:
        passed = {sid for sid, s in self.steps.items() if s.status.finished}
        dependents: dict[uuid.UUID, list[uuid.UUID]] = {sid: [] for sid in self.steps}
        for step in self.steps.values():
            for dep in step.depends_on:
                dependents.setdefault(dep, []).append(step.id)
        for step in self.steps.values():
            if step.status.finished:
                continue
            if step.status is StepStatus.BLOCKED:
                self.blocked[step.id] = "blocked before the restart"
            self.step_refs[step.id] = StepActor.start(
                self.ctx, self.directive, step, dependents[step.id], passed, self.actor_ref
            )
        refs = dict(self.step_refs)
        for ref in refs.values():
            ref.tell(m.Begin(refs))

    def _grant_queued(self) -> None:
        if self.directive.status is not DirectiveStatus.ACTIVE or self.breaker_open:
            return
        if self.halted:
            return
        if self.queued:
            trip = check_breakers(self.directive)  # before every dispatch (DESIGN §8)
            if trip is not None:
                self._trip(trip)
                return
        while self.queued:
            step_id = self.queued.pop(0)
            ref = self.step_refs.get(step_id)
            if ref is not None:
                self.running.add(step_id)
                with_suppressed_tell(ref, m.RunStep())

    def _check_finished(self) -> None:
        if self.directive.status is not DirectiveStatus.ACTIVE or not self.steps:
            return
        if all(s.status.finished for s in self.steps.values()) and not self.reviewing:
            self._review_directive()

    def _complete(self, tx: Tx | None = None) -> None:
        tx = self._status_tx(DirectiveStatus.COMPLETED, tx=tx, completed_at=datetime.now(UTC))
        tx.op(ops.cancel_pending_approvals(self.directive_id))
        tx.op(ops.cancel_running_tasks(self.directive_id))
        tx.event(
            "directive_completed",
            {"steps": len(self.steps), "total_cost_usd": self.directive.total_cost_usd},
        )
        self._commit_status(tx, DirectiveStatus.COMPLETED, completed_at=datetime.now(UTC))
        self._cancel_everything()
        self.stop()

    # ----------------------------------------------------------------- hooks (DirectiveActor)

    def _after_block(self) -> None:
        raise NotImplementedError

    def _trip(self, trip: Trip, *, reason: str | None = None) -> None:
        raise NotImplementedError

    def _regenerate(self, reason: str, by: str | None) -> uuid.UUID | None:
        raise NotImplementedError

    def _review_directive(self) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------- status changes

    def _status_tx(
        self,
        new: DirectiveStatus,
        *,
        actor_id: str | None = None,
        tx: Tx | None = None,
        **values: Any,
    ) -> Tx:
        old = self.directive.status
        if new not in DIRECTIVE_TRANSITIONS[old]:
            raise InvalidTransition(old, new, "directive")
        tx = tx or Tx(self.directive_id)
        tx.op(ops.transition("directives", self.directive_id, str(old), str(new), **values))

        tx.event(
            "status_changed",
            {"old_status": str(old), "new_status": str(new)},
            actor_type=ActorType.USER if actor_id else ActorType.SYSTEM,
            actor_id=actor_id,
        )
        tx.signal(
            DirectiveStatusChanged(
                directive_id=self.directive_id, old_status=str(old), new_status=str(new)
            )
        )
        return tx

    def _commit_status(self, tx: Tx, new: DirectiveStatus, **values: Any) -> None:
        if isinstance(tx.commit(self.ctx.db), Conflict):
            # Someone else (another engine, a crash recovery) moved it: reload and refuse.
            old = self.directive.status
            self.directive = self.ctx.db.reads.directive(self.directive_id)
            raise InvalidTransition(
                self.directive.status if self.directive.status != old else old, new, "directive"
            )
        self.directive = attrs.evolve(self.directive, status=new, **values)

    def _transition(
        self, new: DirectiveStatus, *, actor_id: str | None = None, **values: Any
    ) -> None:
        tx = self._status_tx(new, actor_id=actor_id, **values)
        self._commit_status(tx, new, **values)

    # ----------------------------------------------------------------- failure and cancel

    def _record_failure_and_pause(
        self, error: str, *, actor: str, step_id: uuid.UUID | None = None
    ) -> None:
        try:
            directive = self.ctx.db.reads.directive(self.directive_id)
        except NotFound:
            return
        tx = Tx(self.directive_id)
        tx.event(
            "actor_failed",
            {"actor": actor, "error": error, "step_id": step_id},
            severity=Severity.ERROR,
            step_id=step_id,
        )
        self.directive = directive
        if DirectiveStatus.PAUSED in DIRECTIVE_TRANSITIONS[directive.status]:
            self._status_tx(DirectiveStatus.PAUSED, tx=tx)
        tx.commit(self.ctx.db)
        self.directive = self.ctx.db.reads.directive(self.directive_id)
        for sid in list(self.running):
            ref = self.step_refs.get(sid)
            if ref is not None:
                with_suppressed_tell(ref, m.CancelTask("paused after a failure"))

    def _cancel_everything(self) -> int:
        count = 0
        for step_id in list(self.running):
            ref = self.step_refs.get(step_id)
            if ref is not None:
                with_suppressed_tell(ref, m.CancelTask("stopped"))
                count += 1
        if self.planning_cancel is not None:
            self.planning_cancel.set()
            count += 1
        return count

    def _stop_step_actors(self) -> None:
        for ref in list(self.step_refs.values()):
            if ref.is_alive():
                # Blocking: a step's last report (a cancelled task) is handled, and
                # committed, before the engine closes the database.
                with contextlib.suppress(pykka.ActorDeadError, pykka.Timeout):
                    ref.stop(block=True, timeout=self.ctx.config.ask_timeout_s)

    def _runner(self) -> Any:
        return runner_for(self.directive.agent, self.ctx.config.runner)


def _slug(title: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split()) or "chain"


_ = (time, ApprovalRequired, ChainRegenerated)


def replan_context(reason: str, kept: list[str], blocked: dict[str, str]) -> str:
    """What the planning agent is told when it plans a chain again."""
    return (
        f"A previous chain was abandoned: {reason}.\n"
        f"Steps that passed and are kept (do not redo them; you may depend on them by "
        f"name): {', '.join(kept) or '(none)'}.\n"
        f"Steps that were blocked: "
        f"{'; '.join(f'{k}: {v}' for k, v in blocked.items()) or '(none)'}."
    )
