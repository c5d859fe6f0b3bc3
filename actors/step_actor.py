"""StepActor: owns one step of the current chain.

It waits until every dependency has told it "passed", asks its directive actor
for permission to run (the directive knows about pauses and circuit breakers),
dispatches the agent task to the worker pool, has the result judged in the
evaluation pool, decides, and on passing tells its dependents and its directive,
then stops. Every transition is durable before the actor acts on it.

Failure contract: an exception in a handler is reported to the directive actor
(``StepFailed``), which records it and pauses the directive; the actor stops.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import attrs
import pykka

from directorate.persistence import ops
from directorate.persistence.errors import InvalidTransition
from directorate.persistence.models import (
    ApprovalStatus,
    ApprovalType,
    AutonomyLevel,
    ConfidenceLevel,
    Directive,
    Severity,
    Step,
    StepStatus,
    Task,
    TaskKind,
    TaskStatus,
)
from directorate.persistence.validation import strip_nul
from directorate.persistence.writer import Conflict

from . import messages as m
from .context import EngineContext, approval_expiry
from .evaluation import Judgement, judge
from .planning import step_instructions
from .runners import TaskResult, runner_for
from .signals import ApprovalRequired, EvaluationCompleted, StepStatusChanged
from .tx import Tx

log = logging.getLogger(__name__)


class StepActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(
        self,
        ctx: EngineContext,
        directive: Directive,
        step: Step,
        dependents: list[uuid.UUID],
        passed: set[uuid.UUID],
        directive_ref: pykka.ActorRef[Any],
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.directive = directive
        self.step = step
        self.dependents = dependents
        self.waiting_for = {d for d in step.depends_on if d not in passed}
        self.directive_ref = directive_ref
        self.step_refs: dict[uuid.UUID, Any] = {}
        self.task: Task | None = None
        self.cancel: threading.Event | None = None
        self.rework_instructions: str | None = None

    # ----------------------------------------------------------------- dispatch

    def on_receive(self, message: Any) -> Any:
        handler = getattr(self, f"_on_{type(message).__name__}", None)
        if handler is None:
            log.warning("step %s ignored %r", self.step.name, message)
            return None
        return handler(message)

    def on_failure(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        if self.cancel is not None:
            self.cancel.set()
        with_suppressed_tell(
            self.directive_ref, m.StepFailed(self.step.id, f"{exc_type.__name__}: {exc_value}")
        )

    # ----------------------------------------------------------------- handlers

    def _on_Begin(self, message: m.Begin) -> None:
        self.step_refs = message.step_refs
        status = self.step.status
        if self.step.rework_count and status in (
            StepStatus.READY, StepStatus.REWORK, StepStatus.RUNNING
        ):
            # Recovering a rework attempt: its instructions come from the last evaluation.
            evaluations = self.ctx.db.reads.evaluations_of_step(self.step.id)
            if evaluations:
                self.rework_instructions = evaluations[-1].rework_instructions
        if status is StepStatus.PENDING and not self.waiting_for:
            self._become_ready()
        elif status in (StepStatus.READY, StepStatus.REWORK):
            self._ask_to_run()
        elif status is StepStatus.RUNNING:
            self._recover_running()
        elif status is StepStatus.EVALUATING:
            self._recover_evaluating()

    def _on_DependencyPassed(self, message: m.DependencyPassed) -> None:
        self.waiting_for.discard(message.step_id)
        if not self.waiting_for and self.step.status is StepStatus.PENDING:
            self._become_ready()

    def _on_RunStep(self, message: m.RunStep) -> None:
        if self.step.status not in (StepStatus.READY, StepStatus.REWORK):
            self._tell_directive(m.StepIdle(self.step.id))
            return
        self._dispatch()

    def _on_CancelTask(self, message: m.CancelTask) -> None:
        if self.cancel is not None:
            self.cancel.set()

    def _on_TaskFinished(self, message: m.TaskFinished) -> None:
        if self.task is None or message.task_id != self.task.id:
            return  # a stale report from an attempt we already gave up on
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
        self._record_task_result(self.task, result)

    def _on_EvaluationFinished(self, message: m.EvaluationFinished) -> None:
        if self.task is None or message.task_id != self.task.id:
            return
        outcome = message.outcome
        if isinstance(outcome, BaseException):
            raise outcome  # supervision: recorded, directive paused
        self._decide(outcome)

    def _on_AnswerReview(self, message: m.AnswerReview) -> None:
        new_status = StepStatus.PASSED if message.approved else StepStatus.BLOCKED
        tx = Tx(self.directive.id)
        # The approval's compare-and-set comes first: of two concurrent answers,
        # exactly one finds it pending; the other changes nothing.
        tx.op(
            ops.transition(
                "directive_approvals",
                message.approval_id,
                ApprovalStatus.PENDING,
                message.status,
                responded_by=message.responded_by,
                response_note=message.note,
                _now=["responded_at"],
            )
        )
        self._transition_tx(StepStatus.EVALUATING, new_status, tx=tx)
        tx.event(
            "approval_resolved",
            {
                "approval_id": message.approval_id,
                "status": message.status,
                "responded_by": message.responded_by,
                "note": message.note,
            },
            step_id=self.step.id,
            actor_type=_user_or_system(message.responded_by),
            actor_id=message.responded_by,
        )
        result = tx.commit(self.ctx.db)
        if isinstance(result, Conflict):
            approval = self.ctx.db.reads.approval(message.approval_id)
            raise InvalidTransition(approval.status, message.status, "approval")
        self.step = attrs.evolve(self.step, status=new_status)
        if message.approved:
            self._after_passed()
        else:
            self._tell_directive(m.StepBlocked(self.step.id, "review denied"))

    # ----------------------------------------------------------------- lifecycle steps

    def _become_ready(self) -> None:
        if self._commit_transition(StepStatus.PENDING, StepStatus.READY):
            self._ask_to_run()

    def _ask_to_run(self) -> None:
        self._tell_directive(m.StepReady(self.step.id))

    def _dispatch(self) -> None:
        directive, step = self.directive, self.step
        attempt = step.attempt + 1
        task_id = uuid.uuid4()
        log_dir = self.ctx.config.resolved_log_dir() / str(directive.id)
        task = Task(
            id=task_id,
            directive_id=directive.id,
            kind=TaskKind.STEP,
            step_id=step.id,
            attempt=attempt,
            status=TaskStatus.RUNNING,
            instructions=step_instructions(
                directive, step, rework_instructions=self.rework_instructions, attempt=attempt
            ),
            workdir=directive.local_path or str(log_dir),
            log_path=str(log_dir / f"{step.name}-{attempt}-{task_id.hex[:8]}.log"),
        )
        tx = self._transition_tx(step.status, StepStatus.RUNNING, attempt=attempt)
        tx.op(ops.require_live_chain(directive.id, step.chain_id))
        tx.op(
            ops.insert(
                "tasks",
                id=task.id,
                directive_id=task.directive_id,
                step_id=task.step_id,
                kind=str(task.kind),
                attempt=task.attempt,
                status=str(task.status),
                instructions=task.instructions,
                workdir=task.workdir,
                log_path=task.log_path,
                started_at=datetime.now(UTC),
            )
        )
        tx.event(
            "step_started",
            {"step_id": step.id, "step_name": step.name, "task_id": task.id, "attempt": attempt},
            step_id=step.id,
        )
        if isinstance(tx.commit(self.ctx.db), Conflict):
            # Paused, stopped or superseded since the grant: wait for the next one.
            self._reload()
            if self.step.status in (StepStatus.READY, StepStatus.REWORK):
                self._ask_to_run()
            else:
                self._tell_directive(m.StepIdle(self.step.id))
            return
        self.step = attrs.evolve(self.step, status=StepStatus.RUNNING, attempt=attempt)
        self.task = task
        self.cancel = threading.Event()
        runner = self._runner()
        self.ctx.workers.run_task(
            lambda cancel: runner.run(task, cancel),
            self.actor_ref,
            lambda result: m.TaskFinished(task.id, result),
            self.cancel,
        )

    def _record_task_result(self, task: Task, result: TaskResult) -> None:
        step = self.step
        cancelled = result.status is TaskStatus.CANCELLED
        new_status = StepStatus.READY if cancelled else StepStatus.EVALUATING
        tx = self._transition_tx(StepStatus.RUNNING, new_status)
        tx.op(
            ops.transition(
                "tasks",
                task.id,
                [TaskStatus.QUEUED, TaskStatus.RUNNING],
                str(result.status),
                exit_code=result.exit_code,
                cost_usd=max(0.0, float(result.cost_usd or 0.0)),
                summary=strip_nul(result.summary),
                output_tail=strip_nul(result.output_tail),
                _now=["finished_at"],
            )
        )
        cost_index = len(tx.ops)
        tx.op(ops.add_cost(self.directive.id, max(0.0, float(result.cost_usd or 0.0))))
        tx.event(
            "task_finished",
            {
                "task_id": task.id,
                "step_name": step.name,
                "status": str(result.status),
                "exit_code": result.exit_code,
                "cost_usd": result.cost_usd,
                "summary": strip_nul(result.summary),
            },
            step_id=step.id,
            severity=Severity.INFO if result.status is TaskStatus.SUCCEEDED else Severity.WARNING,
            actor_type=_agent(),
        )
        committed = tx.commit(self.ctx.db)
        if isinstance(committed, Conflict):
            self._reload()
            return
        self.cancel = None
        self.step = attrs.evolve(step, status=new_status)
        self._tell_directive(m.CostReported(float(committed.scalar(cost_index))))
        if cancelled:
            # Paused or stopped: the directive grants the next attempt when it may.
            self.task = None
            self._ask_to_run()
            return
        self._evaluate(task, result.status, result.exit_code, result.output_tail)

    def _evaluate(
        self, task: Task, status: TaskStatus, exit_code: int | None, output_tail: str
    ) -> None:
        config, directive, step = self.ctx.config, self.directive, self.step
        self.ctx.workers.evaluate(
            lambda: judge(
                config,
                directive,
                step,
                task_id=task.id,
                task_status=status,
                exit_code=exit_code,
                output_tail=output_tail or "",
            ),
            self.actor_ref,
            lambda outcome: m.EvaluationFinished(task.id, outcome),
        )

    def _decide(self, judgement: Judgement) -> None:
        """The seed's decision by confidence and autonomy (DESIGN §2)."""
        directive, step = self.directive, self.step
        level = judgement.confidence_level
        manual = directive.autonomy_level is AutonomyLevel.MANUAL
        if level is ConfidenceLevel.RED:
            self._store_and_rework(judgement)
        elif manual or (
            level is ConfidenceLevel.YELLOW
            and directive.autonomy_level is not AutonomyLevel.FULL_AUTO
        ):
            self._store_and_ask(judgement)
        else:
            tx = self._transition_tx(StepStatus.EVALUATING, StepStatus.PASSED)
            self._add_evaluation(tx, judgement)
            if self._commit(tx, StepStatus.PASSED):
                self._after_passed()
        del step

    def _store_and_ask(self, judgement: Judgement) -> None:
        step = self.step
        approval_id = uuid.uuid4()
        description = (
            f"Step '{step.name}' completed with {judgement.confidence_level} confidence "
            f"({judgement.composite_score:.0%}). Review required."
        )
        tx = Tx(self.directive.id)
        tx.op(
            ops.update(
                "chain_steps",
                step.id,
                _where_status=[StepStatus.EVALUATING],
            )
        )
        self._add_evaluation(tx, judgement)
        tx.op(
            ops.insert(
                "directive_approvals",
                id=approval_id,
                directive_id=self.directive.id,
                step_id=step.id,
                approval_type=str(ApprovalType.STEP_REVIEW),
                description=description,
                context={
                    "step_id": str(step.id),
                    "step_name": step.name,
                    "confidence_score": judgement.composite_score,
                    "confidence_level": str(judgement.confidence_level),
                    "summary": judgement.summary,
                    "evaluation_id": str(judgement.evaluation_id),
                },
                expires_at=approval_expiry(self.ctx.config.approval_timeout_s),
            )
        )
        tx.event(
            "approval_requested",
            {"approval_id": approval_id, "approval_type": "step_review", "step_name": step.name},
            step_id=step.id,
        )
        tx.signal(
            ApprovalRequired(
                directive_id=self.directive.id,
                approval_id=approval_id,
                approval_type=str(ApprovalType.STEP_REVIEW),
                description=description,
            )
        )
        if self._commit(tx, StepStatus.EVALUATING):
            self._tell_directive(m.StepWaiting(step.id))

    def _store_and_rework(self, judgement: Judgement) -> None:
        """Red: rework_count + 1; below the limit run again with the rework
        instructions (the seed's TODO), at the limit the step is blocked."""
        directive, step = self.directive, self.step
        count = step.rework_count + 1
        blocked = count >= directive.max_rework_cycles
        new_status = StepStatus.BLOCKED if blocked else StepStatus.REWORK
        tx = self._transition_tx(StepStatus.EVALUATING, new_status, rework_count=count)
        self._add_evaluation(tx, judgement)
        if blocked:
            reason = f"max rework cycles reached ({directive.max_rework_cycles})"
            tx.event(
                "step_blocked",
                {"step_id": step.id, "step_name": step.name, "reason": reason},
                step_id=step.id,
                severity=Severity.WARNING,
            )
        else:
            tx.event(
                "step_rework",
                {
                    "step_id": step.id,
                    "step_name": step.name,
                    "rework_count": count,
                    "instructions": judgement.rework_instructions,
                },
                step_id=step.id,
            )
        if not self._commit(tx, new_status, rework_count=count):
            return
        if blocked:
            self._tell_directive(m.StepBlocked(step.id, reason))
        else:
            self.rework_instructions = judgement.rework_instructions
            self._ask_to_run()

    def _add_evaluation(self, tx: Tx, judgement: Judgement) -> None:
        step = self.step
        tx.op(
            ops.insert(
                "directive_evaluations",
                id=judgement.evaluation_id,
                directive_id=self.directive.id,
                chain_id=step.chain_id,
                step_id=step.id,
                task_id=self.task.id if self.task else None,
                passed=judgement.passed,
                composite_score=judgement.composite_score,
                confidence_level=str(judgement.confidence_level),
                programmatic_results=judgement.programmatic_results,
                llm_results=judgement.llm_results,
                criteria_results=judgement.criteria_results,
                summary=strip_nul(judgement.summary),
                rework_instructions=strip_nul(judgement.rework_instructions),
            )
        )
        tx.op(
            ops.update(
                "chain_steps",
                step.id,
                confidence_score=judgement.composite_score,
                confidence_level=str(judgement.confidence_level),
                last_evaluation_id=judgement.evaluation_id,
            )
        )
        tx.event(
            "evaluation_completed",
            {
                "step_id": step.id,
                "step_name": step.name,
                "evaluation_id": judgement.evaluation_id,
                "passed": judgement.passed,
                "composite_score": judgement.composite_score,
                "confidence_level": str(judgement.confidence_level),
                "summary": judgement.summary,
            },
            step_id=step.id,
        )
        tx.signal(
            EvaluationCompleted(
                directive_id=self.directive.id,
                step_id=step.id,
                evaluation_id=judgement.evaluation_id,
                passed=judgement.passed,
                confidence_level=str(judgement.confidence_level),
                composite_score=judgement.composite_score,
            )
        )
        self.step = attrs.evolve(
            step,
            confidence_score=judgement.composite_score,
            confidence_level=judgement.confidence_level,
            last_evaluation_id=judgement.evaluation_id,
        )

    def _after_passed(self) -> None:
        for dependent in self.dependents:
            ref = self.step_refs.get(dependent)
            if ref is not None:
                with_suppressed_tell(ref, m.DependencyPassed(self.step.id))
        self._tell_directive(m.StepPassed(self.step.id))
        self.stop()

    # ----------------------------------------------------------------- recovery

    def _recover_running(self) -> None:
        """The agent of a dead engine is gone with it: run again as attempt + 1."""
        tasks = self.ctx.db.reads.tasks_of_step(self.step.id)
        tx = self._transition_tx(StepStatus.RUNNING, StepStatus.READY)
        for task in tasks:
            if not task.status.finished:
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
            "step_recovered",
            {
                "step_id": self.step.id,
                "step_name": self.step.name,
                "next_attempt": self.step.attempt + 1,
            },
            step_id=self.step.id,
            severity=Severity.WARNING,
        )
        if self._commit(tx, StepStatus.READY):
            self._ask_to_run()

    def _recover_evaluating(self) -> None:
        pending = self.ctx.db.reads.pending_approvals(self.directive.id)
        if any(a.step_id == self.step.id for a in pending):
            self._tell_directive(m.StepWaiting(self.step.id))
            return
        tasks = self.ctx.db.reads.tasks_of_step(self.step.id)
        if not tasks:
            self._commit(
                self._transition_tx(StepStatus.EVALUATING, StepStatus.READY), StepStatus.READY
            )
            self._ask_to_run()
            return
        last = tasks[-1]
        self.task = last
        self._evaluate(last, last.status, last.exit_code, last.output_tail or "")

    # ----------------------------------------------------------------- helpers

    def _transition_tx(
        self, expected: StepStatus, new: StepStatus, *, tx: Tx | None = None, **values: Any
    ) -> Tx:
        step = self.step
        tx = tx or Tx(self.directive.id)
        tx.op(ops.transition("chain_steps", step.id, str(expected), str(new), **values))
        tx.event(
            "step_status_changed",
            {
                "step_id": step.id,
                "step_name": step.name,
                "old_status": str(expected),
                "new_status": str(new),
            },
            step_id=step.id,
        )
        tx.signal(
            StepStatusChanged(
                directive_id=self.directive.id,
                step_id=step.id,
                step_name=step.name,
                old_status=str(expected),
                new_status=str(new),
            )
        )
        return tx

    def _commit(self, tx: Tx, new_status: StepStatus, **values: Any) -> bool:
        if isinstance(tx.commit(self.ctx.db), Conflict):
            log.warning("step %s changed under us; reloading", self.step.name)
            self._reload()
            return False
        self.step = attrs.evolve(self.step, status=new_status, **values)
        return True

    def _commit_transition(self, expected: StepStatus, new: StepStatus) -> bool:
        return self._commit(self._transition_tx(expected, new), new)

    def _reload(self) -> None:
        self.step = self.ctx.db.reads.step(self.step.id)

    def _runner(self) -> Any:
        return runner_for(self.directive.agent, self.ctx.config.runner)

    def _tell_directive(self, message: Any) -> None:
        with_suppressed_tell(self.directive_ref, message)


def with_suppressed_tell(ref: Any, message: Any) -> None:
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(message)


def _agent() -> Any:
    from directorate.persistence.models import ActorType

    return ActorType.AGENT


def _user_or_system(responded_by: str | None) -> Any:
    from directorate.persistence.models import ActorType

    return ActorType.USER if responded_by else ActorType.SYSTEM
