"""The step decisions of a directive with a workspace (issue 10): dispatch in the
step's worktree, commit recorded, merge before passing, conflicts sent back."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from decision_helpers import chain, directive, sstate, step, task

from directorate.actors import messages as m
from directorate.actors.core import changes as c
from directorate.actors.core.step import decide_step
from directorate.actors.evaluation import Judgement
from directorate.actors.runners import TaskResult, WorkCommit
from directorate.actors.workspace import Conflict, ConflictedFile, Hunk, Merged, MergeKind
from directorate.persistence.models import (
    AgentSpec,
    AutonomyLevel,
    ConfidenceLevel,
    StepStatus,
    TaskStatus,
)

WORKSPACE = {
    "repository": "/repo",
    "base_ref": "main",
    "base_sha": "a" * 40,
    "result_branch": "directorate/0000",
}


def isolated(**values: Any) -> Any:
    d = directive(autonomy_level=AutonomyLevel.FULL_AUTO, **WORKSPACE, **values)
    return d, chain(d)


def green() -> Judgement:
    return Judgement(
        evaluation_id=uuid.uuid4(),
        passed=True,
        composite_score=1.0,
        confidence_level=ConfidenceLevel.GREEN,
    )


def only(decision: c.Decision, kind: type) -> list[Any]:
    return [x for x in (*decision.changes, *decision.effects) if isinstance(x, kind)]


@pytest.mark.parametrize(
    ("values", "in_worktree"),
    [
        (WORKSPACE, True),
        ({"result_branch": None, "repository": None, "local_path": "/shared"}, False),
    ],
    ids=["workspace", "shared"],
)
def test_a_step_is_dispatched_in_its_own_worktree_only_with_a_workspace(
    values: dict[str, Any], in_worktree: bool
) -> None:
    d = directive(**values)
    s = step(d, chain(d), "fix-it", StepStatus.READY)
    decision = decide_step(sstate(s, d), m.RunStep())
    (run,) = only(decision, c.RunTask)
    if in_worktree:
        assert run.workspace is not None
        assert run.task.workdir == run.workspace.worktree
        assert run.task.workdir.endswith(f"/worktrees/{str(d.id)[:8]}/fix-it")
        assert run.workspace.branch == f"directorate/{str(d.id)[:8]}-steps/fix-it"
        assert run.workspace.result_branch == "directorate/0000"
        assert not run.workspace.update_first
    else:
        assert run.workspace is None and run.task.workdir == "/shared"


def test_the_commit_an_attempt_left_goes_on_the_step_with_its_move_and_an_event() -> None:
    d, ch = isolated()
    s = step(d, ch, "fix-it", StepStatus.RUNNING, attempt=1)
    t = task(d, step_id=s.id)
    work = WorkCommit(sha="b" * 40, committed=True, files=2, insertions=5, deletions=1)
    result = TaskResult(status=TaskStatus.SUCCEEDED, exit_code=0, commit=work)
    decision = decide_step(sstate(s, d, last_task=t), m.TaskFinished(t.id, result))
    (moved,) = [x for x in only(decision, c.StepMoved) if x.new is StepStatus.EVALUATING]
    assert moved.values["head_sha"] == "b" * 40
    (note,) = [n for n in only(decision, c.Note) if n.event_type == "step_committed"]
    assert note.data["files"] == 2 and note.data["insertions"] == 5


@pytest.mark.parametrize("isolated_directive", [True, False], ids=["workspace", "shared"])
def test_a_green_step_passes_only_once_merged_when_it_has_a_workspace(
    isolated_directive: bool,
) -> None:
    d, ch = isolated() if isolated_directive else (directive(autonomy_level="full_auto"), None)
    ch = ch or chain(d)
    s = step(d, ch, "fix-it", StepStatus.EVALUATING, attempt=1)
    t = task(d, step_id=s.id, status=TaskStatus.SUCCEEDED)
    decision = decide_step(sstate(s, d, last_task=t), m.EvaluationFinished(t.id, green()))
    passed = [x for x in only(decision, c.StepMoved) if x.new is StepStatus.PASSED]
    merges = only(decision, c.MergeStep)
    assert (bool(merges), bool(passed)) == (isolated_directive, not isolated_directive)


def conflict() -> Conflict:
    hunk = Hunk(line=1, text="<<<<<<< result\nleft\n=======\nright\n>>>>>>> step\n")
    return Conflict(files=(ConflictedFile(path="shared.txt", hunks=(hunk,), messages=()),))


@pytest.mark.parametrize(
    ("outcome", "rework_count", "max_rework", "expected"),
    [
        (Merged(sha="c" * 40, kind=MergeKind.MERGE_COMMIT), 0, 3, StepStatus.PASSED),
        (conflict(), 0, 3, StepStatus.RUNNING),  # back for rework, dispatched at once
        (conflict(), 2, 3, StepStatus.BLOCKED),  # the rework cap applies
        ("merge_step: git update-ref failed: locked", 0, 3, StepStatus.RUNNING),
    ],
    ids=["merged", "conflict", "conflict-at-the-cap", "git-failed"],
)
def test_a_merge_passes_the_step_or_sends_it_back(
    outcome: Any, rework_count: int, max_rework: int, expected: StepStatus
) -> None:
    d, ch = isolated(max_rework_cycles=max_rework)
    s = step(d, ch, "fix-it", StepStatus.EVALUATING, attempt=1, rework_count=rework_count)
    t = task(d, step_id=s.id, status=TaskStatus.SUCCEEDED)
    decision = decide_step(sstate(s, d, last_task=t), m.MergeFinished(t.id, outcome))
    moves = [x.new for x in only(decision, c.StepMoved)]
    assert moves[-1] is expected
    runs = only(decision, c.RunTask)
    if expected is StepStatus.PASSED:
        (merged,) = [n for n in only(decision, c.Note) if n.event_type == "step_merged"]
        assert merged.data["sha"] == "c" * 40
        assert only(decision, c.TellDependents)
    else:
        (note,) = [n for n in only(decision, c.Note) if n.event_type == "merge_conflict"]
    if isinstance(outcome, Conflict) and expected is StepStatus.RUNNING:
        assert note.data["files"] == ["shared.txt"]
        (run,) = runs
        assert run.workspace.update_first  # its worktree gets the result branch first
        assert "<<<<<<< result" in run.task.instructions
    if expected is StepStatus.BLOCKED:
        assert not runs


def test_a_stale_merge_outcome_changes_nothing() -> None:
    d, ch = isolated()
    s = step(d, ch, "fix-it", StepStatus.EVALUATING, attempt=2)
    t = task(d, step_id=s.id, status=TaskStatus.SUCCEEDED)
    merged = Merged(sha="c" * 40, kind=MergeKind.MERGE_COMMIT)
    decision = decide_step(sstate(s, d, last_task=t), m.MergeFinished(uuid.uuid4(), merged))
    assert not decision.changes and not decision.effects


@pytest.mark.parametrize(
    ("resume", "session", "rework", "expected"),
    [
        (["--resume", "{session_id}"], "abc-123", 1, ("--resume", "abc-123")),
        (["--resume", "{session_id}"], None, 1, ()),  # the last attempt named none
        (["--resume", "{session_id}"], "abc-123", 0, ()),  # not a rework
        ([], "abc-123", 1, ()),  # not asked for
    ],
    ids=["resumed", "no-session", "first-attempt", "no-resume-args"],
)
def test_a_rework_attempt_resumes_the_agents_own_session(
    resume: list[str], session: str | None, rework: int, expected: tuple[str, ...]
) -> None:
    agent = AgentSpec(command=["claude", "-p"], resume_args=resume)
    d, ch = isolated(agent=agent)
    s = step(d, ch, "fix-it", StepStatus.REWORK, attempt=1, rework_count=rework)
    previous = task(d, step_id=s.id, status=TaskStatus.SUCCEEDED, session_id=session)
    decision = decide_step(sstate(s, d, last_task=previous), m.RunStep())
    (run,) = only(decision, c.RunTask)
    assert run.task.agent_args == expected


@pytest.mark.parametrize(("generation", "suffix"), [(1, ""), (2, "-g2"), (5, "-g5")])
def test_a_regenerated_chains_step_gets_a_branch_and_worktree_of_its_own(
    generation: int, suffix: str
) -> None:
    d, ch = isolated(chain_generation_count=generation)
    s = step(d, ch, "implement", StepStatus.READY)
    (run,) = only(decide_step(sstate(s, d), m.RunStep()), c.RunTask)
    assert run.workspace.branch.endswith(f"-steps/implement{suffix}")
    assert run.workspace.worktree.endswith(f"/implement{suffix}")
