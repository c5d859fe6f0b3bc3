"""A step's decisions (DESIGN §2): ``decide_step(state, message) -> Decision``, and
the verdict table ``judge_step`` (confidence x autonomy x rework count).

Pure, like the directive's: the state is the step's row and what surrounds it.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs

from directorate.persistence.models import (
    ApprovalType,
    AutonomyLevel,
    ConfidenceLevel,
    Directive,
    DirectiveStatus,
    Severity,
    StepStatus,
    Task,
    TaskKind,
    TaskStatus,
)

from .. import messages as m
from ..evaluation import Judgement
from ..planning import step_instructions
from ..runners import TaskResult
from ..usage import kept_tokens, kept_turns
from ..workspace import Conflict, Merged, branch_name, short_id
from ..workspaces import StepWorkspace
from .changes import (
    NOTHING,
    ApprovalOpened,
    CancelJobs,
    ChainProgress,
    Decision,
    DirectiveMoved,
    Evaluate,
    EvaluationStored,
    JudgeSpent,
    MergeStep,
    Note,
    RequireLiveChain,
    RunTask,
    Seen,
    StepHeld,
    StepMoved,
    StopSelf,
    StopStaleAgent,
    TaskCreated,
    TaskRecorded,
    TasksAbandoned,
    TasksCancelRequested,
    TellDependents,
    TellDirective,
    late_judge_spending,
)
from .escalation import check_breakers, remaining_budget
from .recovery import stale_agent_note
from .state import StepState
from .unavailable import EARLIER_TASKS, asked, unavailable_reason

_WAITING_TO_RUN = (StepStatus.READY, StepStatus.REWORK)


class Verdict(enum.StrEnum):
    PASS = "pass"
    ASK = "ask"
    """A human reviews the step (it stays evaluating until answered)."""
    REWORK = "rework"
    BLOCK = "block"


def judge_step(
    level: ConfidenceLevel, autonomy: AutonomyLevel, rework_count: int, max_rework_cycles: int
) -> tuple[Verdict, int]:
    """The seed's decision by confidence and autonomy, and the new rework count.

    red -> rework (blocked once the count reaches ``max_rework_cycles``); under
    ``manual`` every other result is asked; yellow is asked unless ``full_auto``.
    """
    if level is ConfidenceLevel.RED:
        count = rework_count + 1
        return (Verdict.BLOCK if count >= max_rework_cycles else Verdict.REWORK), count
    if autonomy is AutonomyLevel.MANUAL:
        return Verdict.ASK, rework_count
    if level is ConfidenceLevel.YELLOW and autonomy is not AutonomyLevel.FULL_AUTO:
        return Verdict.ASK, rework_count
    return Verdict.PASS, rework_count


def decide_step(state: StepState, message: m.StepMessage) -> Decision:
    """What the step does about ``message``, as it stands in ``state``."""
    handler: Callable[[StepState, Any], Decision] = _HANDLERS[type(message)]
    return handler(state, message)


def _moved(state: StepState, new: StepStatus, **values: Any) -> StepMoved:
    return StepMoved(step=state.step, new=new, values=values)


def with_status(state: StepState, status: StepStatus, **values: Any) -> StepState:
    return attrs.evolve(state, step=attrs.evolve(state.step, status=status, **values))


# ----------------------------------------------------------------- taking the step up


def _begin(state: StepState, message: m.Begin | m.DependencyPassed) -> Decision:
    step = state.step
    if not state.chain_current or state.directive.status.terminal or step.status.finished:
        return Decision(effects=(StopSelf(),))
    if step.status is StepStatus.PENDING:
        if not state.dependencies_passed:
            return NOTHING
        ready = Decision(changes=(_moved(state, StepStatus.READY),))
        return ready + _dispatch(with_status(state, StepStatus.READY))
    if step.status in _WAITING_TO_RUN:
        return _dispatch(state)
    if step.status is StepStatus.RUNNING and state.job is None and isinstance(message, m.Begin):
        return _recover_running(state)
    if step.status is StepStatus.EVALUATING and state.job is None and isinstance(message, m.Begin):
        return _recover_evaluating(state)
    return NOTHING


def _recover_running(state: StepState) -> Decision:
    """Its agent belonged to an engine that is gone: once that agent is known to be
    gone too, run again as attempt + 1 (two agents must never work on one step)."""
    task = state.last_task
    if task is not None and not task.status.finished and task.id not in state.live_tasks:
        return Decision(effects=(StopStaleAgent(task),))
    return _run_again(state)


def _stale_agent_stopped(state: StepState, message: m.StaleAgentStopped) -> Decision:
    """The old agent is gone (or was elsewhere): record what was done, and run the
    step again if it still waits for that."""
    note = stale_agent_note(message.task_id, message.check, state.step.id)
    noted = Decision(changes=(note,) if note is not None else ())
    step = state.step
    if not state.chain_current or state.directive.status.terminal or step.status.finished:
        return noted + Decision(effects=(StopSelf(),))
    if step.status is StepStatus.RUNNING and state.job is None:
        return noted + _run_again(state)
    return noted


def _run_again(state: StepState) -> Decision:
    step = state.step
    return Decision(
        changes=(
            TasksAbandoned(live=state.live_tasks, step_id=step.id),
            _moved(state, StepStatus.READY),
            Note(
                event_type="step_recovered",
                data={"step_id": step.id, "step_name": step.name, "next_attempt": step.attempt + 1},
                severity=Severity.WARNING,
                step_id=step.id,
            ),
        )
    ) + _dispatch(with_status(state, StepStatus.READY))


def _recover_evaluating(state: StepState) -> Decision:
    if state.review_pending:
        return NOTHING  # a human decides
    task = state.last_task
    if task is None or not task.status.finished:
        return Decision(changes=(_moved(state, StepStatus.READY),)) + _dispatch(
            with_status(state, StepStatus.READY)
        )
    result = TaskResult(
        status=task.status, exit_code=task.exit_code, output_tail=task.output_tail or ""
    )
    return Decision(effects=(Evaluate(task.id, result),))


# ----------------------------------------------------------------- running it


def _run_step(state: StepState, message: m.RunStep) -> Decision:
    return _dispatch(state)


def step_workspace(state: StepState, *, update_first: bool = False) -> StepWorkspace | None:
    """The step's worktree and branches; None when its directive has no workspace."""
    directive, step = state.directive, state.step
    if not directive.result_branch or not directive.repository:
        return None
    # A regenerated chain's step may have a superseded one's name: its own branch.
    generation = directive.chain_generation_count
    name = step.name if generation <= 1 else f"{step.name}-g{generation}"
    return StepWorkspace(
        repository=directive.repository,
        worktree=str(state.settings.worktrees / short_id(directive.id) / name),
        branch=branch_name(directive.id, name),
        result_branch=directive.result_branch,
        step_name=step.name,
        setup=tuple(tuple(argv) for argv in directive.workspace.setup),
        copy=tuple(directive.workspace.copy),
        update_first=update_first,
    )


def resumed_session(state: StepState, workspace: StepWorkspace | None) -> str | None:
    """The session a rework attempt goes on with: its previous attempt's, when it ran
    in the same worktree and reported one, and the agent can resume (a tool kind, or
    ``[agent] resume_args``)."""
    agent, previous = state.directive.agent, state.last_task
    if agent is None or workspace is None or previous is None:
        return None
    if agent.kind == "command" and not agent.resume_args:
        return None
    if not state.step.rework_count or not previous.session_id:
        return None
    return previous.session_id


def resume_args(state: StepState, workspace: StepWorkspace | None) -> tuple[str, ...]:
    """Kind ``command``: ``[agent] resume_args`` with the resumed session in them (a
    tool kind builds its own, from ``Task.resume_session``)."""
    agent, session = state.directive.agent, resumed_session(state, workspace)
    if agent is None or agent.kind != "command" or session is None:
        return ()
    return tuple(arg.replace("{session_id}", session) for arg in agent.resume_args)


def _dispatch(state: StepState, *, update_first: bool = False) -> Decision:
    """Start an attempt when the step waits to run and the directive lets it; else
    tell the directive, which grants it when it may (after a pause, a breaker).
    ``update_first``: merge the result branch into its worktree first (a conflict)."""
    step, directive = state.step, state.directive
    if step.status not in _WAITING_TO_RUN or state.job is not None:
        return NOTHING
    allowed = (
        directive.status is DirectiveStatus.ACTIVE
        and state.chain_current
        and not state.breaker_open
        and not state.unavailable_pending
        and not state.halted
        and check_breakers(directive, now=state.now) is None
    )
    if not allowed:
        return Decision(effects=(TellDirective(),))
    attempt = step.attempt + 1
    task_id = uuid.uuid4()
    log_dir = state.settings.log_dir / str(directive.id)
    rework = state.rework_instructions if step.rework_count else None
    workspace = step_workspace(state, update_first=update_first)
    task = Task(
        id=task_id,
        directive_id=directive.id,
        kind=TaskKind.STEP,
        step_id=step.id,
        attempt=attempt,
        status=TaskStatus.RUNNING,
        instructions=step_instructions(
            directive, step, rework_instructions=rework, attempt=attempt
        ),
        workdir=workspace.worktree if workspace else directive.local_path or str(log_dir),
        log_path=str(log_dir / f"{step.name}-{attempt}-{task_id.hex[:8]}.log"),
        budget_usd=remaining_budget(directive),
        agent_args=resume_args(state, workspace),
        resume_session=resumed_session(state, workspace),
        started_at=state.now,
    )
    return Decision(
        changes=(
            _moved(state, StepStatus.RUNNING, attempt=attempt),
            RequireLiveChain(
                chain_id=step.chain_id, seen=Seen.of(directive) if state.borrowed else None
            ),
            TaskCreated(task=task),
            Note(
                event_type="step_started",
                data={
                    "step_id": step.id,
                    "step_name": step.name,
                    "task_id": task.id,
                    "attempt": attempt,
                },
                step_id=step.id,
            ),
        ),
        effects=(RunTask(task, workspace=workspace),),
    )


def _task_finished(state: StepState, message: m.TaskFinished) -> Decision:
    """The report is stored whatever became of the step; it moves only when the
    report is of its current attempt."""
    step, result = state.step, message.result
    recorded = TaskRecorded(task_id=message.task_id, result=result, step=step)
    spent = (result.cost_usd or 0.0) > 0 or bool(kept_tokens(result) or kept_turns(result))
    tell = (TellDirective(),) if spent else ()  # a breaker's input changed
    current = (
        state.last_task is not None
        and state.last_task.id == message.task_id
        and step.status is StepStatus.RUNNING
    )
    if state.directive.status.terminal or not state.chain_current:
        return Decision(changes=(recorded,), effects=(*tell, StopSelf()))
    if not current:  # a stale report of an attempt given up on
        return Decision(changes=(recorded,), effects=tell)
    if result.status is TaskStatus.CANCELLED:
        # Paused, stopped or tripped: the directive grants the next attempt when it may.
        return Decision(
            changes=(recorded, _moved(state, StepStatus.READY)), effects=(TellDirective(),)
        )
    reason = unavailable_reason(result, state.earlier_tasks)
    if reason is not None:
        return _agent_unavailable(state, message.task_id, reason, recorded)
    committed: tuple[Note, ...] = ()
    values: dict[str, Any] = {}
    workspace = step_workspace(state)
    if result.commit is not None and workspace is not None:
        work = result.commit
        values = {"head_sha": work.sha, "branch": workspace.branch}
        committed = (
            Note(
                event_type="step_committed",
                data={
                    "step_id": step.id,
                    "step_name": step.name,
                    "attempt": step.attempt,
                    "sha": work.sha,
                    "committed": work.committed,
                    "files": work.files,
                    "insertions": work.insertions,
                    "deletions": work.deletions,
                },
                step_id=step.id,
            ),
        )
    return Decision(
        changes=(recorded, _moved(state, StepStatus.EVALUATING, **values), *committed),
        effects=(*tell, Evaluate(message.task_id, result)),
    )


def _agent_unavailable(
    state: StepState, task_id: uuid.UUID, reason: str, recorded: TaskRecorded
) -> Decision:
    """The agent could not reach its model: no work was done, so none is judged. The
    step waits, ready, with its rework count as it was; the directive pauses and asks
    a human once (a second step failing so meanwhile only waits with it), and the
    other agents stop, for they would fail alike."""
    ready = _moved(state, StepStatus.READY)
    if state.unavailable_pending:
        # The directive decides: still paused, it waits; answered meanwhile, it grants
        # this step again (else it would stay ready with no one to dispatch it).
        return Decision(changes=(recorded, ready), effects=(TellDirective(),))
    directive = state.directive
    paused: tuple[DirectiveMoved, ...] = ()
    if directive.status is DirectiveStatus.ACTIVE:  # paused meanwhile: ask all the same
        paused = (DirectiveMoved(old=directive.status, new=DirectiveStatus.PAUSED),)
    question = asked(
        reason,
        step=state.step,
        task_id=task_id,
        attempt=state.step.attempt,
        now=state.now,
        timeout_s=state.settings.approval_timeout_s,
    )
    why = "an agent could not reach its model"
    return Decision(
        changes=(recorded, ready, *paused, TasksCancelRequested(reason=why), *question),
        effects=(CancelJobs(why),),
    )


def _evaluation_finished(state: StepState, message: m.EvaluationFinished) -> Decision:
    step, verdict = state.step, message.judgement
    current = state.last_task is not None and state.last_task.id == message.task_id
    # A verdict that comes too late is not stored, but what its judges spent is.
    spent = late_judge_spending(verdict, step, message.task_id)
    if not state.chain_current or state.directive.status.terminal:
        return Decision(changes=spent, effects=(StopSelf(),))
    if not current or step.status is not StepStatus.EVALUATING:
        return Decision(changes=spent)
    # The judges' spending is added with the evaluation: a rework this decision
    # dispatches sees it (the breakers, the budget it hands on).
    state = attrs.evolve(state, directive=with_judged(state.directive, verdict))
    outcome, count = judge_step(
        verdict.confidence_level,
        state.directive.autonomy_level,
        step.rework_count,
        state.directive.max_rework_cycles,
    )
    stored = EvaluationStored(
        judgement=verdict, chain_id=step.chain_id, step=step, task_id=message.task_id
    )
    # The verdict's figures go on the step with its move (or its hold): one statement.
    scored = {
        "confidence_score": verdict.composite_score,
        "confidence_level": verdict.confidence_level,
        "last_evaluation_id": verdict.evaluation_id,
    }
    workspace = step_workspace(state)
    if outcome is Verdict.PASS and workspace is not None:
        # Passed once its branch is merged into the result branch.
        held = StepHeld(step=step, values=scored)
        return Decision(changes=(stored, held), effects=(MergeStep(message.task_id, workspace),))
    if outcome is Verdict.PASS:
        return Decision(
            changes=(
                stored,
                _moved(state, StepStatus.PASSED, **scored),
                ChainProgress(chain_id=step.chain_id),
            ),
            effects=(TellDependents(), TellDirective(if_chain_idle=True), StopSelf()),
        )
    if outcome is Verdict.ASK:
        # The step stays evaluating until a human answers (the directive applies it).
        held = StepHeld(step=step, values=scored)
        return Decision(changes=(held, stored, *_review(state, verdict)))
    if outcome is Verdict.REWORK:
        return Decision(
            changes=(
                stored,
                _moved(state, StepStatus.REWORK, rework_count=count, **scored),
                Note(
                    event_type="step_rework",
                    data={
                        "step_id": step.id,
                        "step_name": step.name,
                        "rework_count": count,
                        "instructions": verdict.rework_instructions,
                    },
                    step_id=step.id,
                ),
            ),
        ) + _dispatch(
            attrs.evolve(
                with_status(state, StepStatus.REWORK, rework_count=count),
                rework_instructions=verdict.rework_instructions,
            )
        )
    reason = block_reason(verdict, state.directive.max_rework_cycles)
    return Decision(
        changes=(
            stored,
            _moved(state, StepStatus.BLOCKED, rework_count=count, status_reason=reason, **scored),
            Note(
                event_type="step_blocked",
                data={"step_id": step.id, "step_name": step.name, "reason": reason},
                step_id=step.id,
                severity=Severity.WARNING,
            ),
        ),
        effects=(TellDirective(),),
    )


def block_reason(verdict: Judgement, max_rework_cycles: int) -> str:
    """Why a step is blocked, naming its failing checks: two chains that fail with
    the same reason failed the same way (DESIGN §8)."""
    failing = sorted(
        {
            str(r.get("name"))
            for r in verdict.programmatic_results + verdict.llm_results
            if not r.get("passed")
        }
    )
    checks = ", ".join(failing) or "the judge"
    return f"max rework cycles reached ({max_rework_cycles}); failing: {checks}"


def _review(state: StepState, verdict: Judgement) -> tuple[ApprovalOpened, Note]:
    step = state.step
    description = (
        f"Step '{step.name}' completed with {verdict.confidence_level} confidence "
        f"({verdict.composite_score:.0%}). Review required."
    )
    timeout = state.settings.approval_timeout_s
    opened = ApprovalOpened(
        approval_id=uuid.uuid4(),
        kind=ApprovalType.STEP_REVIEW,
        description=description,
        context={
            "step_id": str(step.id),
            "step_name": step.name,
            "confidence_score": verdict.composite_score,
            "confidence_level": str(verdict.confidence_level),
            "summary": verdict.summary,
            "evaluation_id": str(verdict.evaluation_id),
        },
        step_id=step.id,
        expires_at=state.now + timedelta(seconds=timeout) if timeout else None,
    )
    asked = Note(
        event_type="approval_requested",
        data={
            "approval_id": opened.approval_id,
            "approval_type": "step_review",
            "step_name": step.name,
        },
        step_id=step.id,
    )
    return opened, asked


def _merge_finished(state: StepState, message: m.MergeFinished) -> Decision:
    """Merged: the step has passed. A conflict (or a failed merge) sends it back, its
    worktree brought up to the result branch for the agent to resolve."""
    step, outcome = state.step, message.outcome
    current = state.last_task is not None and state.last_task.id == message.task_id
    if not state.chain_current or state.directive.status.terminal:
        return Decision(effects=(StopSelf(),))
    if not current or step.status is not StepStatus.EVALUATING:
        return NOTHING
    if isinstance(outcome, Merged):
        return Decision(
            changes=(
                _moved(state, StepStatus.PASSED, merge_sha=outcome.sha),
                Note(
                    event_type="step_merged",
                    data={"step_id": step.id, "step_name": step.name, "sha": outcome.sha},
                    step_id=step.id,
                ),
                ChainProgress(chain_id=step.chain_id),
            ),
            effects=(TellDependents(), TellDirective(if_chain_idle=True), StopSelf()),
        )
    if isinstance(outcome, Conflict):
        files: list[str] = list(outcome.paths)
        why = f"merge conflict in {', '.join(files)}"
        instructions = (
            "Merging this step into the result branch conflicts with work merged "
            "meanwhile. The result branch has been merged into your working copy: "
            "resolve the conflict markers in the files below, keeping both intents, "
            "and leave no marker behind.\n\n" + outcome.quote()
        )
    else:
        files, why = [], f"the merge failed: {outcome}"
        instructions = f"Merging this step into the result branch failed: {outcome}"
    count = step.rework_count + 1
    conflicted = Note(
        event_type="merge_conflict",
        data={"step_id": step.id, "step_name": step.name, "files": files, "reason": why},
        step_id=step.id,
        severity=Severity.WARNING,
    )
    if count >= state.directive.max_rework_cycles:
        reason = f"max rework cycles reached ({state.directive.max_rework_cycles}); {why}"
        return Decision(
            changes=(
                conflicted,
                _moved(state, StepStatus.BLOCKED, rework_count=count, status_reason=reason),
            ),
            effects=(TellDirective(),),
        )
    return Decision(
        changes=(conflicted, _moved(state, StepStatus.REWORK, rework_count=count)),
    ) + _dispatch(
        attrs.evolve(
            with_status(state, StepStatus.REWORK, rework_count=count),
            rework_instructions=instructions,
        ),
        update_first=isinstance(outcome, Conflict),
    )


def _review_answered(state: StepState, message: m.ReviewAnswered) -> Decision:
    workspace = step_workspace(state)
    task = state.last_task
    answered = state.step.status is StepStatus.EVALUATING and not state.review_pending
    if workspace is not None and answered and task is not None:
        return Decision(effects=(MergeStep(task.id, workspace),))  # approved: merge it
    if state.step.status is StepStatus.PASSED:
        return Decision(effects=(TellDependents(), StopSelf()))
    return Decision(effects=(StopSelf(),)) if state.step.status.finished else NOTHING


_HANDLERS: dict[type, Callable[[StepState, Any], Decision]] = {
    m.Begin: _begin,
    m.DependencyPassed: _begin,
    m.RunStep: _run_step,
    m.TaskFinished: _task_finished,
    m.EvaluationFinished: _evaluation_finished,
    m.ReviewAnswered: _review_answered,
    m.MergeFinished: _merge_finished,
    m.StaleAgentStopped: _stale_agent_stopped,
}


@attrs.frozen(kw_only=True)
class Totals:
    """The directive's totals as the write that recorded a task's report left them."""

    cost_usd: float
    tokens: int
    turns: int

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Totals:
        """From ``record_task_result``'s row: cost total, stored, tokens, turns."""
        return cls(cost_usd=float(row[0]), tokens=int(row[2]), turns=int(row[3]))


def with_judged(directive: Directive, verdict: Judgement) -> Directive:
    """The directive with what an evaluation's judges spent added to its totals, as
    the write that stores the evaluation adds it (``ops.add_usage``)."""
    if not verdict.spent:
        return directive
    return attrs.evolve(
        directive,
        total_cost_usd=directive.total_cost_usd + max(0.0, verdict.cost_usd),
        total_tokens=directive.total_tokens + (verdict.tokens or 0),
        total_agent_turns=directive.total_agent_turns + (verdict.turns or 0),
    )


def applied(state: StepState, decision: Decision, totals: Totals | None) -> StepState:
    """The step's state once ``decision`` is committed: what a continuation of its own
    job (its agent's report, its evaluation) decides on without reading it again.

    Only the step's own rows are carried forward; everything else (the directive's
    status, its chain) may have moved meanwhile, which the guards of the next write
    find out (``StepMoved`` requires a current chain, a dispatch an active directive),
    and the actor reads afresh after any conflict. ``totals`` are the directive's
    as the write's ``TaskRecorded`` returned them (the breakers' inputs).
    """
    step, last_task, directive = state.step, state.last_task, state.directive
    rework, review = state.rework_instructions, state.review_pending
    judged: list[Judgement] = []
    earlier, unavailable = state.earlier_tasks, state.unavailable_pending
    for change in decision.changes:
        if isinstance(change, DirectiveMoved):
            directive = attrs.evolve(directive, status=change.new)
        elif isinstance(change, StepMoved):
            step = attrs.evolve(step, status=change.new, **change.values)
        elif isinstance(change, StepHeld):
            step = attrs.evolve(step, **change.values)
        elif isinstance(change, TaskCreated):
            if last_task is not None:
                earlier = (last_task, *earlier)[:EARLIER_TASKS]
            last_task = change.task
        elif isinstance(change, TaskRecorded) and last_task and last_task.id == change.task_id:
            result = change.result
            last_task = attrs.evolve(
                last_task,
                status=result.status,
                exit_code=result.exit_code,
                tokens=kept_tokens(result),
                turns=kept_turns(result),
                cost_usd=max(0.0, float(result.cost_usd or 0.0)),
                summary=result.summary or None,  # as stored: the next attempt compares it
                session_id=result.session_id,
                output_tail=result.output_tail,
                finished_at=state.now,
            )
        elif isinstance(change, JudgeSpent):
            judged.append(change.judgement)
        elif isinstance(change, EvaluationStored):
            verdict = change.judgement
            judged.append(verdict)
            rework = verdict.rework_instructions
            step = attrs.evolve(
                step,
                confidence_score=verdict.composite_score,
                confidence_level=verdict.confidence_level,
                last_evaluation_id=verdict.evaluation_id,
            )
        elif isinstance(change, ApprovalOpened):
            review = review or change.kind is ApprovalType.STEP_REVIEW
            unavailable = unavailable or change.kind is ApprovalType.AGENT_UNAVAILABLE
    if totals is not None:
        directive = attrs.evolve(
            directive,
            total_cost_usd=totals.cost_usd,
            total_tokens=totals.tokens,
            total_agent_turns=totals.turns,
        )
    for verdict in judged:  # added after the task's totals, in the same write
        directive = with_judged(directive, verdict)
    return attrs.evolve(
        state,
        step=step,
        last_task=last_task,
        directive=directive,
        rework_instructions=rework,
        review_pending=review,
        earlier_tasks=earlier,
        unavailable_pending=unavailable,
    )
