"""DirectiveActor: supervises one directive and owns its step actors.

Each message is handled the same way: load the directive's state from the database
(one query), ``decide``, commit the decision, and only then act on it (start the
planning agent or the step actors, grant ready steps, cancel agents, review the
chain, stop). What the database holds is never kept here; the actor remembers only
its children and the jobs it has running (the planning agent, the review).

Failure contract: requests the engine asks (start, pause, resume, stop, regenerate,
approval answers) that are not allowed raise their error to the caller and change
nothing, and the actor lives on. Nothing raised by user code reaches this actor.
A crashed step actor is recorded and pauses the directive. If this actor itself
crashes (a bug), ``on_failure`` records the error and pauses the directive; the
engine starts a fresh actor from the database on resume.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import attrs
import pykka

from directorate.persistence.errors import (
    DirectorateError,
    InvalidInput,
    InvalidTransition,
    LeaseLost,
    PersistenceUnavailable,
    RunnerError,
)
from directorate.persistence.models import (
    ApprovalStatus,
    Directive,
    DirectiveStatus,
    Severity,
    Step,
    StepStatus,
    Task,
    TaskStatus,
)
from directorate.persistence.writer import Committed

from . import messages as m
from .context import EngineContext
from .core import changes as c
from .core.directive import decide
from .core.state import DirectiveState
from .evaluation import Judgement, judge, judged_inline
from .planning import PlanFolder, plan_outcome
from .pool import PooledActor
from .runners import kill_grace_for, runner_for
from .step_actor import StepActor
from .tx import Tx
from .workers import crashed_judgement
from .workspace.names import short_id
from .workspaces import remove_transcripts, review_checkout, wrap_up
from .writes import stale_attempt, write

log = logging.getLogger(__name__)

_RETRIES = 3
"""Decisions made again after a conflict (a step moved meanwhile) before giving up."""

_ASKED = (m.Start, m.Pause, m.Resume, m.Stop, m.Regenerate, m.AnswerApproval)
"""Requests the engine asks: their refusals go back to the caller."""


class DirectiveActor(PooledActor):
    """Supervises one directive (see the module docstring for its failure contract)."""

    def __init__(self, ctx: EngineContext, directive_id: uuid.UUID) -> None:
        super().__init__(ctx.actors)  # its step actors, started by its handlers, run there too
        self.ctx = ctx
        self.directive_id = directive_id
        self.steps: dict[uuid.UUID, pykka.ActorRef[Any]] = {}
        """Step actors of the current chain by step id."""
        self.planning: tuple[uuid.UUID, threading.Event] | None = None
        """The planning job running for us, its task and its cancel: the planning
        agent, or the check that a dead engine's planning agent is gone."""
        self.reviewing: uuid.UUID | None = None
        """The chain whose directive review runs for us."""
        self.stopping = False

    # ----------------------------------------------------------------- plumbing

    def on_receive(self, message: Any) -> object:
        if isinstance(message, m.Halt):
            return self._cancel_jobs("the engine is shutting down")
        running = self.planning
        reported = isinstance(message, m.PlanningFinished | m.StaleAgentStopped)
        if reported and running and running[0] == message.task_id:
            self.planning = None
        if isinstance(message, m.DirectiveReviewed):
            self.reviewing = None
        try:
            if isinstance(message, m.LeaseGone):
                self._let_go(message.reason)
                return None
            return self._handle(message)
        except LeaseLost:
            # Another engine drives the directive now: ours stops, its agents with it.
            self._let_go("another engine holds the directive's lease")
            if isinstance(message, m.PlanningFinished):
                self._record_stale(message.task_id, message.result)
            if isinstance(message, _ASKED):
                raise
            return None
        finally:
            if self.stopping and self.planning is None:
                self.stop()

    def _let_go(self, reason: str) -> None:
        self._cancel_jobs(reason)
        self._retire_steps()
        self.stopping = True

    def _record_stale(self, task_id: uuid.UUID, result: Any) -> None:
        engine_id = self.ctx.writer.leases.engine_id
        stale_attempt(self.directive_id, task_id, result, engine_id=engine_id).submit(self.ctx.db)

    def on_failure(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._cancel_jobs("paused after a failure")
        self._retire_steps()
        if self.ctx.halted.is_set() and isinstance(exc_value, PersistenceUnavailable):
            # Stopping while the database is away: the directive is not at fault,
            # and it must not be paused; the engine that recovers it takes it up.
            log.info("directive %s: left for recovery (%s)", self.directive_id, exc_value)
            self.ctx.on_actor_stopped(self.directive_id)
            return
        name = exc_type.__name__ if exc_type else "error"
        try:
            self._record_crash(f"{name}: {exc_value}")
        except DirectorateError:
            log.exception("directive %s: could not record its actor's failure", self.directive_id)
        finally:
            self.ctx.on_actor_stopped(self.directive_id)

    def on_stop(self) -> None:
        self._retire_steps()
        self.ctx.on_actor_stopped(self.directive_id)

    # ----------------------------------------------------------------- load, decide, commit, act

    def _handle(self, message: m.DirectiveMessage) -> object:
        asked = isinstance(message, _ASKED)
        known = message.draft if isinstance(message, m.Start) else None
        for _ in range(_RETRIES):
            state, known = self._load(message, known), None  # a retry reads afresh
            if (
                isinstance(message, m.AnswerApproval)
                and state.approval(message.approval_id) is None
            ):
                # Answered already, or not this directive's: say what it is now.
                approval = self.ctx.reads.approval(message.approval_id)
                wanted = ApprovalStatus.APPROVED if message.approved else ApprovalStatus.DENIED
                raise InvalidTransition(approval.status, message.status or wanted, "approval")
            decision = self._reviewed_inline(state, decide(state, message))
            try:
                # Before anything is committed: planning needs a runner.
                if any(isinstance(e, c.RunPlanning) for e in decision.effects):
                    runner_for(state.directive.agent, self.ctx.config.runner)
                written = write(self.directive_id, decision.changes)
            except (InvalidTransition, InvalidInput, RunnerError) as exc:
                if asked:
                    raise
                log.error("directive %s: refused its own decision: %s", self.directive_id, exc)
                return None
            if decision.changes:
                outcome = self.ctx.writer.commit(written.tx)
                if not isinstance(outcome, Committed):
                    log.info(
                        "directive %s: %s; deciding again",
                        self.directive_id,
                        written.describe(outcome.op_index),
                    )
                    continue
            self._act(decision, state)
            self._wrap_up_if_finished(decision, state)
            if decision.error is not None:
                if asked:
                    raise decision.error
                log.info("directive %s: %s", self.directive_id, decision.error)
            return decision.reply
        error = InvalidTransition(state.directive.status, "changed", "directive (it kept changing)")
        if asked:
            raise error
        log.warning("directive %s: gave up on %s: %s", self.directive_id, message, error)
        return None

    def _reviewed_inline(self, state: DirectiveState, decision: c.Decision) -> c.Decision:
        """``decision`` with the review it asks for decided too, in the same write, when
        the judge runs nothing (``judged_inline``, and no result branch to check out)
        and the decision changes nothing before it: the review's verdict and the finish
        it leads to are then one durable write, with no job and no message between."""
        review = next((e for e in decision.effects if isinstance(e, c.ReviewDirective)), None)
        directive = state.directive
        if (
            review is None
            or decision.changes
            or directive.result_branch
            or not judged_inline(self.ctx.config, directive, None)
        ):
            return decision
        try:
            judgement = self._judge_review(directive)()
        except Exception as exc:  # as the evaluation pool does: a red verdict, not a crash
            judgement = crashed_judgement(exc)
        reviewing = attrs.evolve(state, reviewing=True)
        then = decide(reviewing, m.DirectiveReviewed(review.chain_id, judgement))
        rest = tuple(e for e in decision.effects if e is not review)
        return attrs.evolve(decision, changes=then.changes, effects=rest + then.effects)

    def _load(
        self, message: m.DirectiveMessage, known: Directive | None = None
    ) -> DirectiveState:
        """``known``: the directive's row, just read by the engine (a start)."""
        now, settings = datetime.now(UTC), self.ctx.settings
        if isinstance(message, m.Start):
            directive = known or self.ctx.reads.directive(self.directive_id)
            if directive.status is DirectiveStatus.DRAFT:
                # A draft has no chain, task or approval yet: its row is all there is.
                return DirectiveState.of_draft(directive, now=now, settings=settings)
        state = DirectiveState.from_row(
            self.ctx.reads.directive_state(self.directive_id), now=now, settings=settings
        )
        state = attrs.evolve(
            state,
            reviewing=state.chain is not None and self.reviewing == state.chain.id,
            live_tasks=self.ctx.workers.live_tasks(self.directive_id),
            halted=self.ctx.halted.is_set(),
        )
        task = state.planning
        if task is None or state.chain is not None:
            return state
        if isinstance(message, m.PlanningFinished) and message.task_id == task.id:
            status = message.result.status  # its row is written by this very decision
        elif state.awaiting_plan:
            status = task.status
        else:
            return state
        return attrs.evolve(state, plan=plan_outcome(state.directive, task, status, state.carried))

    def _act(self, decision: c.Decision, state: DirectiveState) -> None:
        for effect in decision.effects:
            if isinstance(effect, c.RunPlanning):
                self._run_planning(effect.task, state)
            elif isinstance(effect, c.StopStaleAgent):
                self._stop_stale_agent(effect.task, state)
            elif isinstance(effect, c.StartSteps):
                self._start_steps(effect.steps, effect.directive)
            elif isinstance(effect, c.Grant):
                if any(not self._alive(s) for s in effect.step_ids):
                    self._start_steps()  # a step actor crashed: its successor runs it
                for step_id in effect.step_ids:
                    self._tell_step(step_id, m.RunStep())
            elif isinstance(effect, c.CancelJobs):
                self._cancel_jobs(effect.reason)
            elif isinstance(effect, c.RetireSteps):
                self._retire_steps()
            elif isinstance(effect, c.ReviewDirective):
                self._review(effect.chain_id, state)
            elif isinstance(effect, c.StepAnswered):
                self._tell_step(effect.step_id, m.ReviewAnswered())
            elif isinstance(effect, c.StopSelf):
                self.stopping = True

    # ----------------------------------------------------------------- effects

    def _run_planning(self, task: Task, state: DirectiveState) -> None:
        runner = runner_for(state.directive.agent, self.ctx.config.runner)
        cancel = self.ctx.workers.run_task(
            task,
            runner,
            self.actor_ref,
            lambda result: m.PlanningFinished(task.id, result),
            around=PlanFolder(),
        )
        self.planning = (task.id, cancel)

    def _stop_stale_agent(self, task: Task, state: DirectiveState) -> None:
        self.ctx.workers.stop_stale_agent(
            task,
            kill_grace_for(state.directive.agent, self.ctx.config.runner),
            self.actor_ref,
            lambda check: m.StaleAgentStopped(task.id, check),
        )
        self.planning = (task.id, threading.Event())  # nothing to cancel: it ends by itself

    def _start_steps(
        self, known: tuple[Step, ...] | None = None, directive: Directive | None = None
    ) -> None:
        """A live step actor for every unfinished step of the current chain, and every
        one told who its peers are (a restarted one replaces a crashed one). A new one
        is given its row, and one with nothing to wait for ``directive`` (the row as
        the write that made the chain left it), so that neither need read."""
        if known is None:
            chain = self.ctx.reads.current_chain(self.directive_id)
            if chain is None:
                return
            steps: Sequence[Step] = self.ctx.reads.steps(chain.id)
        else:
            steps = known
        dependents: dict[uuid.UUID, list[uuid.UUID]] = {s.id: [] for s in steps}
        for step in steps:
            for dep in step.depends_on:
                dependents.setdefault(dep, []).append(step.id)
        current = {s.id for s in steps}
        for step_id in [s for s in self.steps if s not in current]:
            _tell(self.steps.pop(step_id), m.Retire())
        made: dict[uuid.UUID, StepActor] = {}
        for step in steps:
            if not step.status.finished and not self._alive(step.id):
                made[step.id] = StepActor(
                    self.ctx, step.id, tuple(dependents.get(step.id, ())), self.actor_ref
                )
                self.steps[step.id] = made[step.id].actor_ref
        peers = dict(self.steps)
        finished = {s.id for s in steps if s.status.finished}
        waiting_on = {
            s.id: frozenset(s.depends_on) - finished
            for s in steps
            if s.status is StepStatus.PENDING
        }
        rows = {s.id: s for s in steps}
        try:
            for step_id, ref in peers.items():
                pending = waiting_on.get(step_id, frozenset())
                new = made.pop(step_id, None)
                if new is None:  # running already (a peer of a restarted step)
                    _tell(ref, m.Begin(peers, waiting_on=pending))
                    continue
                begin = m.Begin(
                    peers,
                    waiting_on=pending,
                    step=rows.get(step_id),
                    directive=None if pending else directive,
                )
                if pending:
                    # Nothing to do till a dependency passes: no turn till then either.
                    new.take_up(begin)
                    new.pool_start(idle=True)
                else:
                    new.pool_start()
                    _tell(ref, begin)
        finally:
            for left in made.values():  # made, and not started for an error: they must
                left.pool_start()  # run, so that a Retire or a stop reaches them

    def _review(self, chain_id: uuid.UUID, state: DirectiveState) -> None:
        self.reviewing = chain_id
        self.ctx.workers.evaluate(
            self._judge_review(state.directive),
            self.actor_ref,
            lambda judgement: m.DirectiveReviewed(chain_id, judgement),
        )

    def _judge_review(self, directive: Directive) -> Callable[[], Judgement]:
        config, worktrees = self.ctx.config, self.ctx.settings.worktrees

        def job() -> Judgement:
            # With a workspace, the review is of the result branch, all steps merged.
            workdir = review_checkout(directive, worktrees) if directive.result_branch else None
            return judge(
                config,
                directive,
                None,
                task_id=None,
                task_status=TaskStatus.SUCCEEDED,
                exit_code=0,
                output_tail="",
                workdir=workdir,
                base_commit=directive.base_sha,
            )

        return job

    def _wrap_up_if_finished(self, decision: c.Decision, state: DirectiveState) -> None:
        """Once a finish is committed: deliver the result branch and remove the
        worktrees, on a worker (git), recording what happened as events."""
        finished = [
            ch.new
            for ch in decision.changes
            if isinstance(ch, c.DirectiveMoved) and ch.new.terminal
        ]
        directive = state.directive
        if not finished or not directive.result_branch:
            return
        completed = finished[-1] is DirectiveStatus.COMPLETED
        writer, worktrees, reads = self.ctx.writer, self.ctx.settings.worktrees, self.ctx.reads

        def job() -> None:
            home = worktrees / short_id(directive.id)
            tasks = reads.tasks_of_directive(directive.id) if directive.agent else []
            # Before the worktrees go: Claude's transcripts are found by their folder.
            removed = remove_transcripts(directive.agent, tasks, home)
            done = wrap_up(directive, worktrees, completed=completed)
            tx = Tx(directive.id)
            for kind, data in (*done.events, *([removed] if removed else [])):
                severity = Severity.WARNING if kind.endswith("failed") else Severity.INFO
                tx.event(kind, data, severity=severity)
            try:
                writer.commit(tx)
            except LeaseLost as exc:
                log.warning("directive %s: its wrap-up is not recorded: %s", directive.id, exc)

        self.ctx.workers.background(job, what=f"wrapping up directive {directive.id}")

    def _cancel_jobs(self, reason: str) -> int:
        count = 0
        if self.planning is not None:
            self.planning[1].set()
            count += 1
        for ref in self.steps.values():
            _tell(ref, m.CancelTask(reason))
        return count + len(self.steps)

    def _retire_steps(self) -> None:
        for ref in self.steps.values():
            _tell(ref, m.Retire())
        self.steps.clear()

    def _record_crash(self, error: str) -> None:
        state = self._load(m.Tick())
        changes: list[c.Change] = [
            c.Note(
                event_type="actor_failed",
                data={"actor": "directive", "error": error},
                severity=Severity.ERROR,
            )
        ]
        status = state.directive.status
        if status in (DirectiveStatus.ACTIVE, DirectiveStatus.PLANNING):
            changes.append(c.DirectiveMoved(old=status, new=DirectiveStatus.PAUSED))
            changes.append(c.TasksCancelRequested(reason="paused after a failure"))
        written = write(self.directive_id, changes)
        outcome = self.ctx.writer.commit(written.tx)
        if not isinstance(outcome, Committed):  # moved meanwhile: record the error alone
            log.warning("directive %s: %s", self.directive_id, written.describe(outcome.op_index))
            self.ctx.writer.commit(write(self.directive_id, changes[:1]).tx)

    def _alive(self, step_id: uuid.UUID) -> bool:
        ref = self.steps.get(step_id)
        return ref is not None and ref.is_alive()

    def _tell_step(self, step_id: uuid.UUID, message: Any) -> None:
        ref = self.steps.get(step_id)
        if ref is not None:
            _tell(ref, message)


def _tell(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        log.debug("dropped %s: its actor has stopped", type(message).__name__)
