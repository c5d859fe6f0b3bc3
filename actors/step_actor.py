"""StepActor: owns one step of the current chain.

Each message is handled the same way: load the step's state from the database,
``decide_step``, commit the decision, and only then act on it (start the agent,
have its work judged, tell the dependents and the directive). A step whose
dependencies have passed starts itself when its directive is active and no breaker
is open (the dispatch's write is guarded by both); otherwise it tells its directive,
which grants it once it may (after a resume, an approval).

Two reads are saved on the hot path, neither holding anything the database lacks:
the reports of the step's own job (its agent's, its evaluation's) are decided on
the state its last commit left (``core.step.applied``), every write being guarded
so a stale view changes nothing and is read afresh; and ``Begin`` names the
dependencies still pending, so a waiting step reads nothing until they pass. The
actor stops once its step is finished or its chain retired, never while a job of
its is in flight (its report is still recorded).

Failure contract: nothing raised by user code reaches this thread (jobs report
failures as values). A bug in a handler is a told failure: ``on_failure`` cancels
the running agent and tells the directive actor (``StepActorFailed``), which records
it and pauses the directive; resuming starts a fresh step actor from the database.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs
import pykka

from directorate.persistence.errors import LeaseLost, PersistenceUnavailable, RunnerError
from directorate.persistence.models import Directive, Step, StepStatus, TaskStatus
from directorate.persistence.writer import Committed

from . import messages as m
from .context import EngineContext
from .core import changes as c
from .core.state import StepState
from .core.step import Totals, applied, decide_step, step_workspace
from .evaluation import Judgement, judge, judged_inline
from .pool import PooledActor
from .runners import TaskResult, kill_grace_for, runner_for
from .workers import crashed_judgement
from .workspaces import agent_environment, fork_point, merge_step
from .writes import stale_attempt, write

log = logging.getLogger(__name__)

_RETRIES = 3
"""Decisions made again after a conflict (the step moved under us) before giving up."""


class StepActor(PooledActor):  # on its directive actor's executor (actors.pool)
    def __init__(
        self,
        ctx: EngineContext,
        step_id: uuid.UUID,
        dependents: tuple[uuid.UUID, ...],
        directive_ref: pykka.ActorRef[Any],
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.step_id = step_id
        self.dependents = dependents
        self.directive_ref = directive_ref
        self.peers: Mapping[uuid.UUID, pykka.ActorRef[Any]] = {}
        self.job: uuid.UUID | None = None
        """The task whose agent or evaluation runs for us now (or whose dead engine's
        agent is being made sure to be gone)."""
        self.cancel: threading.Event | None = None
        self.stopping = False
        self.waiting_on: set[uuid.UUID] = set()
        """Dependencies not yet heard to pass (a hint from ``Begin``: while any is
        left, a ``DependencyPassed`` needs no read)."""
        self.snapshot: StepState | None = None
        """The step as our last committed decision left it, for the reports of our own
        job; any other message, and any conflict, reads it afresh."""
        self.row: Step | None = None
        self.handed: Directive | None = None
        """The step's row (``Begin``) and its directive's (``Begin``, the last
        ``DependencyPassed``) as handed over, for our first decision (``_borrowed``)."""
        self.decided = False
        """A message of ours has been decided on: rows handed over since are no news."""
        # Here rather than in on_start: a step started idle has no turn until its
        # first message, and the engine's shutdown must find it all the same.
        with ctx.lock:
            ctx.step_actors[self.actor_urn] = self.actor_ref

    def take_up(self, begin: m.Begin) -> None:
        """What ``Begin`` tells: called by the directive actor before a step waiting on
        its dependencies starts idle, so that the step takes no turn until one passes."""
        self.peers = begin.peers
        self.waiting_on = set(begin.waiting_on)
        if not self.decided:
            self.row, self.handed = begin.step, begin.directive or self.handed

    # ----------------------------------------------------------------- plumbing

    def on_stop(self) -> None:
        with self.ctx.lock:
            self.ctx.step_actors.pop(self.actor_urn, None)

    def on_failure(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.on_stop()
        if self.cancel is not None:
            self.cancel.set()
        if self.ctx.halted.is_set() and isinstance(exc_value, PersistenceUnavailable):
            # The engine is stopping while the database is away: nothing is wrong
            # with the step, and the engine that recovers it takes it up.
            log.info("step %s: left for recovery (%s)", self.step_id, exc_value)
            return
        name = exc_type.__name__ if exc_type else "error"
        _tell(self.directive_ref, m.StepActorFailed(self.step_id, f"{name}: {exc_value}"))

    def on_receive(self, message: Any) -> None:
        if isinstance(message, m.Begin):
            self.take_up(message)
        waiting = bool(self.waiting_on)
        if isinstance(message, m.DependencyPassed):
            self.waiting_on.discard(message.step_id)
            waiting = bool(self.waiting_on)
            if message.directive is not None:
                self.handed = message.directive
        reported = isinstance(
            message,
            m.TaskFinished | m.EvaluationFinished | m.StaleAgentStopped | m.MergeFinished,
        )
        if reported and message.task_id == self.job:
            self.job, self.cancel = None, None
        if isinstance(message, m.CancelTask):
            if self.cancel is not None:
                self.cancel.set()
        elif isinstance(message, m.Retire):
            self.stopping = True
        elif not (isinstance(message, m.Begin | m.DependencyPassed) and waiting):
            try:
                self._handle(message)
            except LeaseLost:
                self._let_go(message)
        if self.stopping and self.job is None:
            self.stop()

    def _let_go(self, message: m.StepMessage) -> None:
        """Another engine drives the directive now: stop our agent and ourselves; a
        report of our agent's is recorded as a stale attempt, never as the step's."""
        log.info("step %s: another engine holds its directive's lease", self.step_id)
        if self.cancel is not None:
            self.cancel.set()
        self.stopping = True
        if isinstance(message, m.TaskFinished):
            step = self.snapshot.step if self.snapshot is not None else None
            directive_id = (
                self.snapshot.directive.id
                if self.snapshot is not None
                else self.ctx.reads.task(message.task_id).directive_id
            )
            stale_attempt(
                directive_id,
                message.task_id,
                message.result,
                engine_id=self.ctx.writer.leases.engine_id,
                step_name=step.name if step else None,
            ).submit(self.ctx.db)

    # ----------------------------------------------------------------- load, decide, commit, act

    def _handle(self, message: m.StepMessage) -> None:
        own_report = isinstance(message, m.TaskFinished | m.EvaluationFinished)
        borrowed = self._borrowed(message)
        self.decided = True
        for _ in range(_RETRIES):
            state, borrowed = borrowed or self._state(reuse=own_report), None
            decision = self._judged_inline(state, decide_step(state, message))
            chain_idle, totals = False, None
            if decision.changes:
                written = write(state.directive.id, decision.changes)
                outcome = self.ctx.writer.commit(written.tx)
                if not isinstance(outcome, Committed):
                    log.info(
                        "step %s: %s; deciding again",
                        state.step.name,
                        written.describe(outcome.op_index),
                    )
                    self.snapshot = None
                    continue
                progress = written.progress
                if progress is None:
                    progress = written.index_of(c.ChainProgress)
                chain_idle = progress is not None and outcome.scalar(progress) == 0
                recorded = written.index_of(c.TaskRecorded)  # it returns the totals
                if recorded is not None:
                    totals = Totals.from_row(outcome.rows[recorded][0])
            self.snapshot = applied(state, decision, totals)
            self._act(decision, state, chain_idle=chain_idle)
            return
        log.warning("step %s: gave up on %s after %d conflicts", self.step_id, message, _RETRIES)
        if isinstance(message, m.TaskFinished):  # the report is kept whatever happens
            self.ctx.workers.record_orphan(message.task_id, message.result)

    def _state(self, *, reuse: bool) -> StepState:
        """The step's state: our snapshot for a report of our own job, else read."""
        live, halted = self.ctx.workers.live_tasks(self.step_id), self.ctx.halted.is_set()
        now = datetime.now(UTC)
        if reuse and self.snapshot is not None:
            return attrs.evolve(
                self.snapshot, now=now, job=self.job, live_tasks=live, halted=halted
            )
        return StepState.from_row(
            self.ctx.reads.step_state(self.step_id),
            now=now,
            settings=self.ctx.settings,
            job=self.job,
            live_tasks=live,
            halted=halted,
        )

    def _borrowed(self, message: m.StepMessage) -> StepState | None:
        """The state of a step never run, taking up its first message, from the rows
        handed over rather than read: its own (attempt 0: no task, evaluation or review
        of its own yet), its directive's, and its dependencies all passed. Its guards
        catch what moved since (``StepState.borrowed``); a conflict reads. Once only."""
        row, directive = self.row, self.handed
        self.row = self.handed = None
        if (
            not isinstance(message, m.Begin | m.DependencyPassed)
            or row is None
            or directive is None
            or self.snapshot is not None
            or self.waiting_on
            or row.attempt != 0
            or row.status not in (StepStatus.PENDING, StepStatus.READY)
        ):
            return None
        return StepState(
            step=row,
            directive=directive,
            chain_current=True,
            dependency_statuses=(StepStatus.PASSED,) * len(row.depends_on),
            rework_instructions=None,
            last_task=None,
            review_pending=False,
            breaker_open=False,
            now=datetime.now(UTC),
            settings=self.ctx.settings,
            job=self.job,
            live_tasks=self.ctx.workers.live_tasks(self.step_id),
            halted=self.ctx.halted.is_set(),
            borrowed=True,
        )

    def _act(self, decision: c.Decision, state: StepState, *, chain_idle: bool) -> None:
        for effect in decision.effects:
            if isinstance(effect, c.RunTask):
                self._run(effect, state)
            elif isinstance(effect, c.StopStaleAgent):
                self._stop_stale_agent(effect, state)
            elif isinstance(effect, c.Evaluate):
                self._evaluate(effect, state)
            elif isinstance(effect, c.MergeStep):
                self._merge(effect)
            elif isinstance(effect, c.TellDirective):
                if chain_idle or not effect.if_chain_idle:
                    _tell(self.directive_ref, m.StepChanged(self.step_id))
            elif isinstance(effect, c.TellDependents):
                # Our directive as our write left it: what a dependent decides on.
                directive = self.snapshot.directive if self.snapshot is not None else None
                for dependent in self.dependents:
                    ref = self.peers.get(dependent)
                    if ref is not None:
                        _tell(ref, m.DependencyPassed(self.step_id, directive))
            elif isinstance(effect, c.CancelJobs):
                # Our write paused the directive (our agent could not reach its model):
                # the other steps' agents stop too, as a pause stops them.
                for step_id, ref in self.peers.items():
                    if step_id != self.step_id:
                        _tell(ref, m.CancelTask(effect.reason))
            elif isinstance(effect, c.StopSelf):
                self.stopping = True

    def _run(self, effect: c.RunTask, state: StepState) -> None:
        task = effect.task
        self.job = task.id
        try:
            runner = runner_for(state.directive.agent, self.ctx.config.runner)
        except RunnerError as exc:
            result = TaskResult(status=TaskStatus.FAILED, error=str(exc), output_tail=str(exc))
            self.actor_ref.tell(m.TaskFinished(task.id, result))
            return
        around = effect.workspace
        if around is not None:  # its setup runs in the agent's clean environment
            around = attrs.evolve(around, environment=agent_environment(state.directive.agent))
        self.cancel = self.ctx.workers.run_task(
            task,
            runner,
            self.actor_ref,
            lambda result: m.TaskFinished(task.id, result),
            around=around,
        )

    def _merge(self, effect: c.MergeStep) -> None:
        self.job = effect.task_id
        workspace = effect.workspace
        self.ctx.workers.merge(
            lambda: merge_step(workspace),
            self.actor_ref,
            lambda outcome: m.MergeFinished(effect.task_id, outcome),
        )

    def _stop_stale_agent(self, effect: c.StopStaleAgent, state: StepState) -> None:
        task = effect.task
        self.job = task.id
        self.ctx.workers.stop_stale_agent(
            task,
            kill_grace_for(state.directive.agent, self.ctx.config.runner),
            self.actor_ref,
            lambda check: m.StaleAgentStopped(task.id, check),
        )

    def _judged_inline(self, state: StepState, decision: c.Decision) -> c.Decision:
        """``decision`` with its evaluation decided too, in the same write, when the
        judge runs nothing (``judged_inline``): the report, the verdict and the step's
        moves (running -> evaluating -> its verdict) are then one durable write."""
        evaluate = next((e for e in decision.effects if isinstance(e, c.Evaluate)), None)
        workspace = step_workspace(state)
        where = Path(workspace.worktree) if workspace else None
        if evaluate is None or not judged_inline(self.ctx.config, state.directive, where):
            return decision
        try:
            judgement = self._judge(evaluate, state)()
        except Exception as exc:  # as the evaluation pool does: a red verdict, not a crash
            judgement = crashed_judgement(exc)
        judged = applied(state, decision, None)
        then = decide_step(judged, m.EvaluationFinished(evaluate.task_id, judgement))
        rest = tuple(e for e in decision.effects if e is not evaluate)
        return c.Decision(changes=decision.changes + then.changes, effects=rest + then.effects)

    def _evaluate(self, effect: c.Evaluate, state: StepState) -> None:
        self.job = effect.task_id
        self.ctx.workers.evaluate(
            self._judge(effect, state),
            self.actor_ref,
            lambda judgement: m.EvaluationFinished(effect.task_id, judgement),
        )

    def _judge(self, effect: c.Evaluate, state: StepState) -> Callable[[], Judgement]:
        config, directive, step = self.ctx.config, state.directive, state.step
        result = effect.result
        workspace = step_workspace(state)

        def job() -> Judgement:
            # In the step's worktree, on its commit; its diff since it left the result branch.
            return judge(
                config,
                directive,
                step,
                task_id=effect.task_id,
                task_status=result.status,
                exit_code=result.exit_code,
                output_tail=result.output_tail or "",
                workdir=Path(workspace.worktree) if workspace else None,
                base_commit=fork_point(workspace) if workspace else None,
                denials=result.denials,
            )

        return job


def _tell(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        log.debug("dropped %s: its actor has stopped", type(message).__name__)
