"""A decision's changes as one durable write: guarded SQL, its events, its signals.

Each status change is checked against the same transition table that builds its
guard (``DIRECTIVE_TRANSITIONS``, ``STEP_TRANSITIONS``): an illegal one raises
``InvalidTransition`` here, before anything is sent; a legal one whose guard finds
the row moved on is a ``Conflict`` that ``Written.describe`` explains.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from directorate.persistence import ops
from directorate.persistence.errors import InvalidTransition
from directorate.persistence.models import (
    DIRECTIVE_TRANSITIONS,
    STEP_TRANSITIONS,
    ActorType,
    ApprovalStatus,
    Severity,
    Step,
    StepStatus,
    Task,
    TaskKind,
    TaskStatus,
)
from directorate.persistence.validation import strip_nul
from directorate.verifiers.tools.figures import MAX_TASK_TOKENS, MAX_TASK_TURNS

from .core import changes as c
from .signals import (
    ApprovalRequired,
    ChainRegenerated,
    DirectiveStatusChanged,
    EvaluationCompleted,
    StepStatusChanged,
)
from .tx import Tx
from .usage import kept_tokens, kept_turns


@attrs.frozen
class Written:
    """A decision's write, and which change each of its statements came from."""

    tx: Tx
    sources: tuple[c.Change, ...]
    """``sources[i]`` made op ``i``."""
    progress: int | None = None
    """The op that returns the write's ``ChainProgress`` count (a step's move)."""

    def describe(self, op_index: int) -> str:
        """Why the guard of op ``op_index`` matched no row, in the change's terms."""
        change = self.sources[op_index] if op_index < len(self.sources) else None
        if isinstance(change, c.DirectiveMoved):
            return f"the directive is no longer {change.old} (wanted {change.new})"
        if isinstance(change, c.StepMoved | c.StepHeld):
            return (
                f"step {change.step.name} is no longer {change.step.status}, or its chain "
                "is no longer current (or, for a dispatch, its directive not active, or "
                "not as the step last saw it)"
            )
        if isinstance(change, c.ApprovalAnswered):
            return f"approval {change.approval.id} is no longer pending"
        if isinstance(change, c.RequireLiveChain):
            seen = " (or its totals, limits or approvals moved)" if change.seen else ""
            return f"the directive is not active or the chain is no longer current{seen}"
        if isinstance(change, c.ChainSuperseded):
            return f"chain {change.chain_id} is no longer current"
        if isinstance(change, c.RequireNoPending):
            return f"a {change.kind} approval is pending already"
        return f"statement {op_index} changed nothing"

    def index_of(self, kind: type[c.Change]) -> int | None:
        """The first op made by a change of ``kind``."""
        return next((i for i, s in enumerate(self.sources) if isinstance(s, kind)), None)


def write(directive_id: uuid.UUID, changes: Sequence[c.Change]) -> Written:
    """The changes as one write, in as few statements as keep their guards: a step's
    successive moves are one UPDATE (each hop's event where it stands); a dispatch
    (the move to running, its guard that the directive is active, the task's row) is
    one statement; a chain's progress is returned by the move of the one step a
    write moves."""
    tx = Tx(directive_id)
    sources: list[c.Change] = []
    moves = _moves(changes)
    progress = _progress_of_one_move(changes, moves)
    progress_op = None
    folded: set[int] = set()
    for i, change in enumerate(changes):
        before = len(tx.ops)
        if i in folded or change is progress:
            pass  # written with the move it belongs to
        elif isinstance(change, c.StepMoved) and i in moves:
            hops = [h for h in (changes[j] for j in moves[i]) if isinstance(h, c.StepMoved)]
            dispatch = _dispatched(changes, moves[i][-1])
            task, seen = (dispatch[1].task, dispatch[0].seen) if dispatch else (None, None)
            if dispatch is not None:
                folded.update((moves[i][-1] + 1, moves[i][-1] + 2))
            _step_update(tx, hops, task=task, seen=seen, progress=progress is not None)
            if progress is not None:
                progress_op = len(tx.ops) - 1
            _step_moved_notice(tx, directive_id, change)
        elif isinstance(change, c.StepMoved):  # a later hop of a move written above
            _step_moved_notice(tx, directive_id, change)
        else:
            _add(tx, directive_id, change)
        sources.extend([change] * (len(tx.ops) - before))
    return Written(tx, tuple(sources), progress_op)


def _moves(changes: Sequence[c.Change]) -> dict[int, list[int]]:
    """Each step's successive moves (pending -> ready -> running; running ->
    evaluating -> passed), by the position of the first: one UPDATE guarded by the
    first one's status. Other changes may stand between them, but no other change of
    a step's row."""
    moves: dict[int, list[int]] = {}
    open_move: list[int] | None = None
    for i, change in enumerate(changes):
        if isinstance(change, c.StepMoved):
            last = changes[open_move[-1]] if open_move else None
            if (
                isinstance(last, c.StepMoved)
                and open_move is not None
                and last.step.id == change.step.id
                and last.new is change.step.status
            ):
                open_move.append(i)
            else:
                open_move = moves[i] = [i]
        elif isinstance(change, c.StepHeld):
            open_move = None
    return moves


def _dispatched(
    changes: Sequence[c.Change], last: int
) -> tuple[c.RequireLiveChain, c.TaskCreated] | None:
    """The guard and the task of a dispatch whose move to running is ``changes[last]``
    (they follow it)."""
    moved, rest = changes[last], changes[last + 1 : last + 3]
    if (
        isinstance(moved, c.StepMoved)
        and moved.new is StepStatus.RUNNING
        and len(rest) == 2
        and isinstance(rest[0], c.RequireLiveChain)
        and rest[0].chain_id == moved.step.chain_id
        and isinstance(rest[1], c.TaskCreated)
        and rest[1].task.step_id == moved.step.id
    ):
        return rest[0], rest[1]
    return None


def _progress_of_one_move(
    changes: Sequence[c.Change], moves: dict[int, list[int]]
) -> c.ChainProgress | None:
    """The write's ``ChainProgress``, when the write moves exactly one step, of that
    chain, in one UPDATE (which then returns the count)."""
    progress = [change for change in changes if isinstance(change, c.ChainProgress)]
    if len(progress) != 1 or len(moves) != 1:
        return None
    (first,) = moves
    moved = changes[first]
    assert isinstance(moved, c.StepMoved)
    return progress[0] if moved.step.chain_id == progress[0].chain_id else None


def _add(tx: Tx, directive_id: uuid.UUID, change: c.Change) -> None:
    if isinstance(change, c.DirectiveMoved):
        _directive_moved(tx, directive_id, change)
    elif isinstance(change, c.StepMoved):
        _step_moved(tx, directive_id, change)
    elif isinstance(change, c.StepHeld):
        held = _column_values(change.values)
        tx.op(ops.update("chain_steps", change.step.id, _where_status=[change.step.status], **held))
    elif isinstance(change, c.RequireLiveChain):
        tx.op(ops.require_live_chain(directive_id, change.chain_id, _seen_columns(change.seen)))
    elif isinstance(change, c.RequireNoPending):
        tx.op(ops.require_no_pending_approval(directive_id, str(change.kind)))
    elif isinstance(change, c.ChainProgress):
        tx.op(ops.steps_in_progress(change.chain_id))
    elif isinstance(change, c.ChainCreated):
        _chain_created(tx, directive_id, change)
    elif isinstance(change, c.ChainSuperseded):
        tx.op(ops.transition("directive_chains", change.chain_id, "active", "superseded"))
    elif isinstance(change, c.ChainReplaced):
        tx.event(
            "chain_regenerated",
            {
                "old_chain_id": change.old_chain_id,
                "new_chain_id": change.new_chain_id,
                "generation": change.generation,
                "carried_over": list(change.carried),
            },
        )
        tx.signal(
            ChainRegenerated(
                directive_id=directive_id,
                old_chain_id=change.old_chain_id,
                new_chain_id=change.new_chain_id,
            )
        )
    elif isinstance(change, c.TaskCreated):
        _task_created(tx, change)
    elif isinstance(change, c.TaskRecorded):
        _task_recorded(tx, directive_id, change)
    elif isinstance(change, c.TaskProcessStarted):
        process = change.process
        tx.op(
            ops.record_task_process(
                change.task_id,
                pid=process.pid,
                pgid=process.pgid,
                host=process.host,
                process_started_at=_moment(process.started_at),
                supervisor_pid=process.supervisor_pid,
                supervisor_started_at=_moment(process.supervisor_started_at),
                engine_id=change.engine_id,
            )
        )
    elif isinstance(change, c.TasksCancelRequested):
        tx.op(ops.request_cancel_tasks(directive_id, change.reason))
    elif isinstance(change, c.TasksAbandoned):
        tx.op(ops.abandon_tasks(directive_id, live=change.live, step_id=change.step_id))
    elif isinstance(change, c.ApprovalOpened):
        _approval_opened(tx, directive_id, change)
    elif isinstance(change, c.ApprovalAnswered):
        tx.op(
            ops.transition(
                "directive_approvals",
                change.approval.id,
                ApprovalStatus.PENDING,
                str(change.status),
                responded_by=change.by,
                response_note=change.note,
                _now=["responded_at"],
            )
        )
    elif isinstance(change, c.ApprovalsCancelled):
        tx.op(ops.cancel_pending_approvals(directive_id))
    elif isinstance(change, c.EvaluationStored):
        _evaluation_stored(tx, directive_id, change)
    elif isinstance(change, c.JudgeSpent):
        _judge_usage(tx, directive_id, change)
    elif isinstance(change, c.LimitRaised):
        raised: dict[str, Any] = {change.limit: change.new}
        tx.op(ops.update("directives", directive_id, **raised))
        tx.event(
            "limit_raised",
            {"limit": change.limit, "old": change.old, "new": change.new},
            actor_type=_actor_type(change.by),
            actor_id=change.by,
        )
    elif isinstance(change, c.Note):
        tx.event(
            change.event_type,
            dict(change.data),
            severity=change.severity,
            step_id=change.step_id,
            actor_type=_actor_type(change.by),
            actor_id=change.by,
        )
    else:  # pragma: no cover - the Change union is closed
        raise TypeError(f"not a change: {change!r}")


def _directive_moved(tx: Tx, directive_id: uuid.UUID, change: c.DirectiveMoved) -> None:
    old, new = change.old, change.new
    if new not in DIRECTIVE_TRANSITIONS[old]:
        raise InvalidTransition(old, new, "directive")
    tx.op(ops.transition("directives", directive_id, str(old), str(new), **change.values))
    tx.event(
        "status_changed",
        {"old_status": str(old), "new_status": str(new)},
        actor_type=_actor_type(change.by),
        actor_id=change.by,
    )
    tx.signal(
        DirectiveStatusChanged(directive_id=directive_id, old_status=str(old), new_status=str(new))
    )


def _step_moved(tx: Tx, directive_id: uuid.UUID, change: c.StepMoved) -> None:
    _step_update(tx, [change])
    _step_moved_notice(tx, directive_id, change)


def _step_update(
    tx: Tx,
    hops: Sequence[c.StepMoved],
    *,
    task: Task | None = None,
    seen: c.Seen | None = None,
    progress: bool = False,
) -> None:
    """One step's moves, each checked against STEP_TRANSITIONS, in one UPDATE guarded
    by the first one's status. With ``task``, a dispatch: the UPDATE requires the
    directive active (and as ``seen``) and inserts the task's row. With ``progress``,
    it returns the chain's steps at work (``ChainProgress``)."""
    values: dict[str, Any] = {}
    for hop in hops:
        if hop.new not in STEP_TRANSITIONS[hop.step.status]:
            raise InvalidTransition(hop.step.status, hop.new, f"step {hop.step.name}")
        values |= _column_values(hop.values)
    first, last = hops[0], hops[-1]
    move = ops.move_step(
        first.step.id,
        str(first.step.status),
        str(last.new),
        directive_active=task is not None,
        directive_as=_seen_columns(seen),
        progress=progress,
        **values,
    )
    tx.op(ops.dispatch_step(move, **_task_row(task)) if task is not None else move)


def _seen_columns(seen: c.Seen | None) -> dict[str, Any] | None:
    return None if seen is None else attrs.asdict(seen)


def _step_moved_notice(tx: Tx, directive_id: uuid.UUID, change: c.StepMoved) -> None:
    step, old, new = change.step, change.step.status, change.new
    tx.event(
        "step_status_changed",
        {
            "step_id": step.id,
            "step_name": step.name,
            "old_status": str(old),
            "new_status": str(new),
        },
        step_id=step.id,
    )
    tx.signal(
        StepStatusChanged(
            directive_id=directive_id,
            step_id=step.id,
            step_name=step.name,
            old_status=str(old),
            new_status=str(new),
        )
    )


def _chain_created(tx: Tx, directive_id: uuid.UUID, change: c.ChainCreated) -> None:
    tx.op(
        ops.insert(
            "directive_chains",
            id=change.chain_id,
            directive_id=directive_id,
            generation=change.generation,
            name=change.name,
            description=change.description,
            rationale=change.rationale,
        )
    )
    tx.op(ops.update("directives", directive_id, chain_generation_count=change.generation))
    if change.steps:
        tx.op(
            ops.insert_many(
                "chain_steps", [_step_row(directive_id, change, s) for s in change.steps]
            )
        )
    tx.event(
        "chain_created",
        {
            "chain_id": change.chain_id,
            "generation": change.generation,
            "steps": [s.name for s in change.steps],
            "carried_over": list(change.carried),
        },
    )


def _step_row(directive_id: uuid.UUID, change: c.ChainCreated, step: Step) -> dict[str, Any]:
    return dict(
        id=step.id,
        chain_id=change.chain_id,
        directive_id=directive_id,
        name=step.name,
        step_type=str(step.step_type),
        description=step.description,
        task_plan=step.task_plan,
        depends_on=list(step.depends_on),
        requirement_ids=list(step.requirement_ids),
        verifier_config=step.verifier_config,
        editor_x=step.editor_x,
        editor_y=step.editor_y,
        status=str(step.status),
        attempt=step.attempt,
        rework_count=step.rework_count,
        confidence_score=step.confidence_score,
        confidence_level=str(step.confidence_level) if step.confidence_level else None,
        last_evaluation_id=step.last_evaluation_id,
    )


def _task_created(tx: Tx, change: c.TaskCreated) -> None:
    tx.op(ops.insert("tasks", **_task_row(change.task)))


def _task_row(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "directive_id": task.directive_id,
        "step_id": task.step_id,
        "kind": str(task.kind),
        "attempt": task.attempt,
        "status": str(task.status),
        "instructions": task.instructions,
        "workdir": task.workdir,
        "log_path": task.log_path,
        "plan_file": task.plan_file,
        "budget_usd": task.budget_usd,
        "started_at": task.started_at,
    }


def _task_recorded(tx: Tx, directive_id: uuid.UUID, change: c.TaskRecorded) -> None:
    result, step = change.result, change.step
    reported = _reported(result)
    cost, summary = reported["cost"], reported["summary"]
    tx.op(
        ops.record_task_result(
            directive_id,
            change.task_id,
            status=str(result.status),
            session_id=result.session_id,
            **reported,
        )
    )
    data: dict[str, Any] = {
        "task_id": change.task_id,
        "kind": str(TaskKind.STEP if step else TaskKind.PLANNING),
        "status": str(result.status),
        "exit_code": result.exit_code,
        "cost_usd": cost,
        "tokens": reported["tokens"],
        "turns": reported["turns"],
    }
    if step is not None:
        data |= {"step_name": step.name, "summary": summary}
    if result.denials:  # tool uses the agent's permissions refused, by its own report
        data["denials"] = result.denials
    if result.error:  # why it failed: a timeout, or the agent's own report of an error
        data["error"] = strip_nul(result.error)[:500]
    for event_type, note in (
        ("cost_unknown", result.cost_note),
        ("tokens_unknown", result.tokens_note),
        ("turns_unknown", result.turns_note),
    ):
        if note:
            tx.event(
                event_type,
                {"task_id": change.task_id, "reason": strip_nul(note)},
                step_id=step.id if step else None,
                severity=Severity.WARNING,
            )
    ok = result.status is TaskStatus.SUCCEEDED
    tx.event(
        "task_finished",
        data,
        step_id=step.id if step else None,
        severity=Severity.INFO if ok else Severity.WARNING,
        actor_type=ActorType.AGENT if step else ActorType.SYSTEM,
    )


def _approval_opened(tx: Tx, directive_id: uuid.UUID, change: c.ApprovalOpened) -> None:
    tx.op(
        ops.insert(
            "directive_approvals",
            id=change.approval_id,
            directive_id=directive_id,
            step_id=change.step_id,
            approval_type=str(change.kind),
            description=change.description,
            context=_plain(dict(change.context)),
            expires_at=change.expires_at,
        )
    )
    tx.signal(
        ApprovalRequired(
            directive_id=directive_id,
            approval_id=change.approval_id,
            approval_type=str(change.kind),
            description=change.description,
        )
    )


def _evaluation_stored(tx: Tx, directive_id: uuid.UUID, change: c.EvaluationStored) -> None:
    """The evaluation's row, and what its judges spent added to the directive's totals
    in the same write (the breakers see it as they see a task's cost), with a
    ``judge_usage`` event saying how much."""
    verdict, step = change.judgement, change.step
    tx.op(
        ops.insert(
            "directive_evaluations",
            id=verdict.evaluation_id,
            directive_id=directive_id,
            chain_id=change.chain_id,
            step_id=step.id if step else None,
            task_id=change.task_id,
            passed=verdict.passed,
            composite_score=verdict.composite_score,
            confidence_level=str(verdict.confidence_level),
            programmatic_results=verdict.programmatic_results,
            llm_results=verdict.llm_results,
            criteria_results=verdict.criteria_results,
            summary=strip_nul(verdict.summary),
            rework_instructions=strip_nul(verdict.rework_instructions),
        )
    )
    if verdict.spent:
        _judge_usage(tx, directive_id, change)
    summary = {
        "evaluation_id": verdict.evaluation_id,
        "composite_score": verdict.composite_score,
        "confidence_level": str(verdict.confidence_level),
        "summary": verdict.summary,
    }
    if step is not None:  # its figures go on the step with its move (StepMoved values)
        tx.event(
            "evaluation_completed",
            {"step_id": step.id, "step_name": step.name, "passed": verdict.passed, **summary},
            step_id=step.id,
        )
    else:
        tx.event("directive_reviewed", summary)
    tx.signal(
        EvaluationCompleted(
            directive_id=directive_id,
            step_id=step.id if step else None,
            evaluation_id=verdict.evaluation_id,
            passed=verdict.passed,
            confidence_level=str(verdict.confidence_level),
            composite_score=verdict.composite_score,
        )
    )


def _judge_usage(
    tx: Tx, directive_id: uuid.UUID, change: c.EvaluationStored | c.JudgeSpent
) -> None:
    verdict, step = change.judgement, change.step
    cost = max(0.0, verdict.cost_usd)
    tokens, turns = _count(verdict.tokens, MAX_TASK_TOKENS), _count(verdict.turns, MAX_TASK_TURNS)
    tx.op(ops.add_usage(directive_id, cost=cost, tokens=tokens, turns=turns))
    data: dict[str, Any] = {
        "evaluation_id": verdict.evaluation_id,
        "task_id": change.task_id,
        "cost_usd": cost,
        "tokens": tokens,
        "turns": turns,
    }
    if step is not None:
        data["step_name"] = step.name
    tx.event("judge_usage", data, step_id=step.id if step else None)


def _count(value: int | None, maximum: int) -> int | None:
    """A judges' count as it is added up: within bounds, else unknown."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        return None
    return value


def _column_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Enum members as the strings stored."""
    return {k: str(v) if isinstance(v, enum.Enum) else v for k, v in values.items()}


def _actor_type(by: str | None) -> ActorType:
    return ActorType.USER if by else ActorType.SYSTEM


def _plain(value: Any) -> Any:
    """JSON-ready: ids and enums as strings (approval contexts are jsonb)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _moment(seconds: float | None) -> datetime | None:
    """Seconds since the epoch as a timestamp (microseconds: far finer than the
    10 ms a process start time is counted in)."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def stale_attempt(
    directive_id: uuid.UUID,
    task_id: uuid.UUID,
    result: Any,
    *,
    engine_id: uuid.UUID,
    step_name: str | None = None,
) -> Tx:
    """A report of an agent whose engine lost the directive's lease before it came:
    written without the lease (it changes no state the owner decides on), its cost
    counted, its outcome recorded as a stale attempt and never as the step's."""
    reported = _reported(result)
    cost = reported["cost"]
    tx = Tx(directive_id)
    tx.op(ops.record_stale_attempt(directive_id, task_id, **reported))
    tx.event(
        "stale_attempt",
        {
            "task_id": task_id,
            "step_name": step_name,
            "status": str(result.status),
            "exit_code": result.exit_code,
            "cost_usd": cost,
            "engine": engine_id,
        },
        severity=Severity.WARNING,
        actor_id=str(engine_id),
    )
    return tx


def _reported(result: Any) -> dict[str, Any]:
    """A task's report as it is stored: no negative cost, no NUL byte, no unusable count."""
    return {
        "exit_code": result.exit_code,
        "cost": max(0.0, float(result.cost_usd or 0.0)),
        "summary": strip_nul(result.summary) or None,
        "output_tail": strip_nul(result.output_tail or ""),
        "tokens": kept_tokens(result),
        "turns": kept_turns(result),
    }
