"""DirectiveActor: supervises one directive.

It plans (or takes the explicit steps), creates the chain, starts one StepActor
per unfinished step, grants each ready step permission to run (only while the
directive is active and no circuit breaker has tripped), handles pause, resume,
stop, approvals that are not step reviews, blocked chains, regeneration, circuit
breakers and completion. This module holds its judgement and escalation
(approvals, circuit breakers, blocked chains, regeneration, the directive review);
its state and lifecycle are ``directive_core.DirectiveCore``.

Failure contract: engine calls (``ask``) that are not allowed raise
``InvalidTransition`` to the caller and change nothing. A crashed step actor is
recorded as an error event and pauses the directive. If this actor itself
crashes, ``on_failure`` records the error and pauses the directive; the engine
starts a fresh actor from the database on resume.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import attrs
import pykka

from directorate.persistence import ops
from directorate.persistence.errors import (
    CircuitBreakerTripped,
    InvalidTransition,
)
from directorate.persistence.models import (
    ActorType,
    Approval,
    ApprovalStatus,
    ApprovalType,
    DirectiveStatus,
    Severity,
    StepStatus,
    TaskStatus,
)
from directorate.persistence.validation import reject_nul
from directorate.persistence.writer import Conflict

from . import messages as m
from .context import approval_expiry
from .directive_core import DirectiveCore, replan_context
from .escalation import (
    Trip,
    can_progress,
    check_breakers,
    current_figure,
    raised_limit,
    regeneration_trip,
    regenerations_left,
)
from .evaluation import judge
from .signals import (
    ApprovalRequired,
    EvaluationCompleted,
)
from .tx import Tx


class DirectiveActor(DirectiveCore):
    """Supervises one directive (see the module docstring for its failure contract)."""

    use_daemon_thread = True

    def _on_AnswerApproval(self, message: m.AnswerApproval) -> None:
        approval = self.ctx.db.reads.approval(message.approval_id)
        status = ApprovalStatus.APPROVED if message.approved else ApprovalStatus.DENIED
        self._check_answerable(approval, status)
        if approval.approval_type is ApprovalType.STEP_REVIEW and approval.step_id:
            ref = self.step_refs.get(approval.step_id)
            if ref is None or not ref.is_alive():
                raise InvalidTransition(approval.status, status, "approval")
            ref.ask(
                m.AnswerReview(
                    message.approval_id,
                    message.approved,
                    message.responded_by,
                    message.note,
                    str(status),
                ),
                timeout=self.ctx.config.ask_timeout_s,
            )
            self.waiting_review.discard(approval.step_id)
            return
        self._resolve(approval, status, message.responded_by, message.note, message.raise_limit)

    def _check_answerable(self, approval: Approval, status: ApprovalStatus) -> None:
        if approval.status is not ApprovalStatus.PENDING:
            raise InvalidTransition(approval.status, status, "approval")
        if self.directive.status.terminal:
            raise InvalidTransition(self.directive.status, status, "approval of a directive")

    def _resolve(
        self,
        approval: Approval,
        status: ApprovalStatus,
        by: str | None,
        note: str | None,
        raise_limit: dict[str, float] | None = None,
    ) -> None:
        """Answer an approval that is the directive's own (not a step review)."""
        approved = status is ApprovalStatus.APPROVED
        tx = Tx(self.directive_id)
        tx.op(
            ops.transition(
                "directive_approvals",
                approval.id,
                ApprovalStatus.PENDING,
                str(status),
                responded_by=by,
                response_note=note,
                _now=["responded_at"],
            )
        )
        tx.event(
            "approval_resolved",
            {
                "approval_id": approval.id,
                "approval_type": str(approval.approval_type),
                "status": str(status),
                "responded_by": by,
                "note": note,
            },
            actor_type=ActorType.USER if by else ActorType.SYSTEM,
            actor_id=by,
        )
        kind = approval.approval_type
        if not approved:
            reason = f"{kind} approval {status}"
            self._status_tx(DirectiveStatus.FAILED, tx=tx, completed_at=datetime.now(UTC))
            tx.event("directive_failed", {"reason": reason}, severity=Severity.ERROR)
            tx.op(ops.cancel_running_tasks(self.directive_id))
            self._commit_answer(tx, approval, status)
            self.directive = attrs.evolve(self.directive, status=DirectiveStatus.FAILED)
            self._cancel_everything()
            self.stop()
            return
        if kind is ApprovalType.CIRCUIT_BREAKER:
            trip = Trip(
                limit=approval.context["limit"],
                figure=approval.context["figure"],
                threshold=approval.context["threshold"],
            )
            new_limit = raised_limit(trip, raise_limit, current_figure(trip, self.directive))
            tx.op(ops.update("directives", self.directive_id, **{trip.limit: new_limit}))
            tx.event(
                "limit_raised",
                {"limit": trip.limit, "old": trip.threshold, "new": new_limit},
                actor_type=ActorType.USER,
                actor_id=by,
            )
            resume = self.directive.status is DirectiveStatus.PAUSED
            if resume and self.chain is None:
                # Tripped while planning: resuming plans again (or ingests the plan
                # that finished meanwhile), as a plain resume does.
                self._commit_answer(tx, approval, status)
                self.directive = attrs.evolve(self.directive, **{trip.limit: new_limit})
                self.breaker_open = False
                self._on_Resume(m.Resume(actor_id=by))
                return
            if resume:
                self._status_tx(DirectiveStatus.ACTIVE, tx=tx, actor_id=by)
            self._commit_answer(tx, approval, status)
            self.directive = attrs.evolve(self.directive, **{trip.limit: new_limit})
            self.breaker_open = False
            if trip.limit == "max_chain_regenerations":
                if resume:
                    self.directive = attrs.evolve(self.directive, status=DirectiveStatus.ACTIVE)
                self._regenerate(approval.context.get("reason") or "limit raised", by)
                return
            if resume:
                self.directive = attrs.evolve(self.directive, status=DirectiveStatus.ACTIVE)
            self._grant_queued()
            self._check_finished()
        elif kind is ApprovalType.CHAIN_BLOCKED:
            self._commit_answer(tx, approval, status)
            self._regenerate(approval.context.get("reason") or "chain blocked", by)
        elif kind is ApprovalType.DIRECTIVE_REVIEW:
            if self.directive.status is not DirectiveStatus.ACTIVE:
                raise InvalidTransition(
                    self.directive.status, DirectiveStatus.COMPLETED, "directive"
                )
            self._complete(tx=tx)  # the answer and the completion commit together

    def _commit_answer(self, tx: Tx, approval: Approval, status: ApprovalStatus) -> None:
        if isinstance(tx.commit(self.ctx.db), Conflict):
            current = self.ctx.db.reads.approval(approval.id)
            self.directive = self.ctx.db.reads.directive(self.directive_id)
            raise InvalidTransition(current.status, status, "approval")

    def _on_Regenerate(self, message: m.Regenerate) -> uuid.UUID | None:
        if (
            self.directive.status not in (DirectiveStatus.ACTIVE, DirectiveStatus.PAUSED)
            or self.chain is None
        ):
            raise InvalidTransition(self.directive.status, DirectiveStatus.PLANNING, "directive")
        reject_nul("reason", message.reason)
        reject_nul("by", message.actor_id)
        if self.breaker_open:
            raise CircuitBreakerTripped(
                "a circuit breaker is open: answer its approval before regenerating"
            )
        trip = regeneration_trip(self.directive)
        if trip is not None:
            self._trip(trip, reason=message.reason)
            raise CircuitBreakerTripped(f"{trip.describe()}; a circuit_breaker approval asks")
        return self._regenerate(message.reason, message.actor_id)

    def _on_Tick(self, message: m.Tick) -> None:
        if self.ctx.config.approval_timeout_s is not None:
            self._expire_approvals()
        # A planning agent that runs too long trips the wall-time breaker too.
        if self.directive.status in _RUNNING and not self.breaker_open:
            trip = check_breakers(self.directive)
            if trip is not None:
                self._trip(trip)

    # ----------------------------------------------------------------- escalation

    def _after_block(self) -> None:
        """When nothing else can progress: regenerate (full_auto, regenerations left)
        or ask a human (approve = regenerate, deny = fail)."""
        if self.directive.status is not DirectiveStatus.ACTIVE:
            return
        if can_progress(self.steps.values(), self.waiting_review):
            return
        reasons = {
            self.steps[sid].name: why for sid, why in self.blocked.items() if sid in self.steps
        }
        reason = "; ".join(f"{name}: {why}" for name, why in sorted(reasons.items()))
        if self.directive.autonomy_level == "full_auto" and regenerations_left(self.directive):
            self._regenerate(f"chain blocked ({reason})", None)
            return
        self._open_approval(
            ApprovalType.CHAIN_BLOCKED,
            f"The chain is blocked ({reason}). Approve to regenerate it, deny to fail.",
            {"reason": f"chain blocked ({reason})", "blocked": reasons},
        )

    def _open_approval(
        self, kind: ApprovalType, description: str, context: dict[str, Any], *, tx: Tx | None = None
    ) -> uuid.UUID:
        approval_id = uuid.uuid4()
        own = tx is None
        tx = tx or Tx(self.directive_id)
        timeout = self.ctx.config.approval_timeout_s
        tx.op(
            ops.insert(
                "directive_approvals",
                id=approval_id,
                directive_id=self.directive_id,
                approval_type=str(kind),
                description=description,
                context=context,
                expires_at=approval_expiry(timeout),
            )
        )
        tx.event(
            "approval_requested",
            {"approval_id": approval_id, "approval_type": str(kind), "description": description},
        )
        tx.signal(
            ApprovalRequired(
                directive_id=self.directive_id,
                approval_id=approval_id,
                approval_type=str(kind),
                description=description,
            )
        )
        if own:
            tx.commit(self.ctx.db)
        return approval_id

    def _trip(self, trip: Trip, *, reason: str | None = None) -> None:
        """Cancel running tasks, pause, warn, and ask a human (DESIGN §8)."""
        if self.breaker_open:
            return  # one question at a time: its approval is already pending
        self.breaker_open = True
        tx = Tx(self.directive_id)
        if self.directive.status in _RUNNING:
            self._status_tx(DirectiveStatus.PAUSED, tx=tx)
        tx.event(
            "circuit_breaker_tripped",
            {
                "limit": trip.limit,
                "figure": trip.figure,
                "threshold": trip.threshold,
                "message": trip.describe(),
            },
            severity=Severity.WARNING,
        )
        self._open_approval(
            ApprovalType.CIRCUIT_BREAKER,
            f"{trip.describe()}. Approve with a raised limit to resume, deny to fail.",
            {
                "limit": trip.limit,
                "figure": trip.figure,
                "threshold": trip.threshold,
                "reason": reason,
            },
            tx=tx,
        )
        result = tx.commit(self.ctx.db)
        if isinstance(result, Conflict):
            self.directive = self.ctx.db.reads.directive(self.directive_id)
            self.breaker_open = False
            return
        if self.directive.status in _RUNNING:
            self.directive = attrs.evolve(self.directive, status=DirectiveStatus.PAUSED)
        self._cancel_everything()

    def _expire_approvals(self) -> None:
        now = datetime.now(UTC)
        for approval in self.ctx.db.reads.pending_approvals(self.directive_id):
            if approval.expires_at is None or approval.expires_at > now:
                continue
            if approval.approval_type is ApprovalType.STEP_REVIEW and approval.step_id:
                ref = self.step_refs.get(approval.step_id)
                if ref is not None:
                    # The step actor may have just finished or crashed: skip it this tick.
                    with contextlib.suppress(InvalidTransition, pykka.ActorDeadError):
                        ref.ask(
                            m.AnswerReview(
                                approval.id, False, "", "expired", str(ApprovalStatus.EXPIRED)
                            ),
                            timeout=self.ctx.config.ask_timeout_s,
                        )
                    self.waiting_review.discard(approval.step_id)
                continue
            with contextlib.suppress(InvalidTransition):
                self._resolve(approval, ApprovalStatus.EXPIRED, None, "expired")

    def _regenerate(self, reason: str, by: str | None) -> uuid.UUID | None:
        """Supersede the chain and plan a new generation; passed steps carry over."""
        trip = regeneration_trip(self.directive)
        if trip is not None:
            self._trip(trip, reason=reason)
            return None
        old_chain = self.chain
        assert old_chain is not None
        passed = [s for s in self.steps.values() if s.status is StepStatus.PASSED]
        blocked = {
            self.steps[sid].name: why for sid, why in self.blocked.items() if sid in self.steps
        }
        tx = Tx(self.directive_id)
        if self.directive.status is not DirectiveStatus.PLANNING:
            self._status_tx(DirectiveStatus.PLANNING, tx=tx, actor_id=by)
        tx.op(ops.transition("directive_chains", old_chain.id, "active", "superseded"))
        tx.op(ops.cancel_running_tasks(self.directive_id))
        # Questions about the old chain (step reviews, its review) no longer apply.
        tx.op(ops.cancel_pending_approvals(self.directive_id))
        tx.event(
            "chain_superseded",
            {
                "chain_id": old_chain.id,
                "reason": reason,
                "passed": [s.name for s in passed],
                "blocked": blocked,
            },
            actor_type=ActorType.USER if by else ActorType.SYSTEM,
            actor_id=by,
        )
        if isinstance(tx.commit(self.ctx.db), Conflict):
            self.directive = self.ctx.db.reads.directive(self.directive_id)
            raise InvalidTransition(self.directive.status, DirectiveStatus.PLANNING, "directive")
        # Only now that the new state is durable: stop the old chain's work.
        self._cancel_everything()
        self._stop_step_actors()
        self.step_refs.clear()
        self.running.clear()
        self.queued.clear()
        self.reviewing = False
        self.directive = attrs.evolve(self.directive, status=DirectiveStatus.PLANNING)
        self.carry_over = passed
        self.old_chain_id = old_chain.id
        self.chain = None
        self.steps = {}
        self.blocked = {}
        self.waiting_review.clear()
        context = replan_context(reason, [s.name for s in passed], blocked)
        self._begin_planning(started=False, replan_context=context)
        return old_chain.id

    def _review_directive(self) -> None:
        """Every step passed: judge the directive as a whole against its criteria."""
        self.reviewing = True
        config, directive = self.ctx.config, self.directive
        chain_id = self.chain.id if self.chain else None
        self.ctx.workers.evaluate(
            lambda: judge(
                config,
                directive,
                None,
                task_id=None,
                task_status=TaskStatus.SUCCEEDED,
                exit_code=0,
                output_tail="",
            ),
            self.actor_ref,
            lambda outcome: m.DirectiveReviewed(outcome, chain_id),
        )

    def _on_DirectiveReviewed(self, message: m.DirectiveReviewed) -> None:
        if self.chain is None or message.chain_id != self.chain.id:
            return  # a review of a chain since superseded
        self.reviewing = False
        outcome = message.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        if self.directive.status is not DirectiveStatus.ACTIVE:
            return
        level = outcome.confidence_level
        tx = Tx(self.directive_id)
        tx.op(
            ops.insert(
                "directive_evaluations",
                id=outcome.evaluation_id,
                directive_id=self.directive_id,
                chain_id=self.chain.id if self.chain else None,
                passed=outcome.passed,
                composite_score=outcome.composite_score,
                confidence_level=str(level),
                programmatic_results=outcome.programmatic_results,
                llm_results=outcome.llm_results,
                criteria_results=outcome.criteria_results,
                summary=outcome.summary,
                rework_instructions=outcome.rework_instructions,
            )
        )
        tx.event(
            "directive_reviewed",
            {
                "evaluation_id": outcome.evaluation_id,
                "confidence_level": str(level),
                "composite_score": outcome.composite_score,
                "summary": outcome.summary,
            },
        )
        tx.signal(
            EvaluationCompleted(
                directive_id=self.directive_id,
                step_id=None,
                evaluation_id=outcome.evaluation_id,
                passed=outcome.passed,
                confidence_level=str(level),
                composite_score=outcome.composite_score,
            )
        )
        full_auto = self.directive.autonomy_level == "full_auto"
        if level == "green" or (level == "yellow" and full_auto):
            if level == "yellow":
                tx.event(
                    "directive_review_auto_approved",
                    {"reason": "yellow confidence accepted under full_auto"},
                )
            self._complete(tx=tx)
            return
        if level == "red" and full_auto and regenerations_left(self.directive):
            tx.commit(self.ctx.db)
            self._regenerate(f"directive review was red: {outcome.summary}", None)
            return
        self._open_approval(
            ApprovalType.DIRECTIVE_REVIEW,
            f"Every step passed, but the directive review is {level} "
            f"({outcome.composite_score:.0%}): {outcome.summary}. "
            "Approve to complete, deny to fail.",
            {
                "evaluation_id": str(outcome.evaluation_id),
                "confidence_level": str(level),
                "rework_instructions": outcome.rework_instructions,
            },
            tx=tx,
        )
        tx.commit(self.ctx.db)


_RUNNING = (DirectiveStatus.ACTIVE, DirectiveStatus.PLANNING)
"""Where a circuit breaker can trip: work is under way."""
