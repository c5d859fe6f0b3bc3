"""Every read the engine and the command line use, on real rows (issue point 6)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from directorate.persistence import models, ops
from directorate.persistence.database import Database
from directorate.persistence.errors import NotFound
from directorate.persistence.writer import Committed, Op

pytestmark = pytest.mark.integration


@pytest.fixture
def db(dsn: str) -> Iterator[Database]:
    with Database.open(dsn) as database:
        yield database


def _write(db: Database, *statements: Op) -> Committed:
    result = db.writer.write(*statements)
    assert isinstance(result, Committed), result
    return result


@pytest.fixture
def world(db: Database) -> dict[str, Any]:
    """A directive with a superseded and a current chain, a diamond of steps, tasks,
    evaluations, approvals, events and commands; plus a finished directive."""
    ids: dict[str, Any] = {name: uuid.uuid4() for name in ("d", "done", "old", "chain")}
    _write(
        db,
        ops.insert(
            "directives",
            id=ids["d"],
            title="live",
            goal="g",
            status="active",
            requirements=[{"id": "R1", "description": "works"}],
            constraints=["no network"],
        ),
        ops.insert("directives", id=ids["done"], title="done", goal="g", status="completed"),
        ops.insert(
            "directive_chains",
            id=ids["old"],
            directive_id=ids["d"],
            generation=1,
            name="first",
            status="superseded",
        ),
        ops.insert(
            "directive_chains", id=ids["chain"], directive_id=ids["d"], generation=2, name="second"
        ),
    )
    for name, x, deps, status in [
        ("design", 100, [], "passed"),
        ("build", 300, ["design"], "pending"),
        ("docs", 300, ["design"], "pending"),
        ("ship", 500, ["build", "docs"], "pending"),
        ("lint", 100, [], "running"),
    ]:
        ids[name] = uuid.uuid4()
        _write(
            db,
            ops.insert(
                "chain_steps",
                id=ids[name],
                chain_id=ids["chain"],
                directive_id=ids["d"],
                name=name,
                step_type="implement",
                depends_on=[ids[d] for d in deps],
                requirement_ids=["R1"],
                editor_x=x,
                status=status,
            ),
        )
    for attempt in (2, 1):
        ids[f"task{attempt}"] = uuid.uuid4()
        _write(
            db,
            ops.insert(
                "tasks",
                id=ids[f"task{attempt}"],
                directive_id=ids["d"],
                step_id=ids["design"],
                kind="step",
                attempt=attempt,
                instructions=f"attempt {attempt}",
                status="succeeded",
            ),
        )
    ids["planning"] = uuid.uuid4()
    ids["eval"] = uuid.uuid4()
    ids["pending"], ids["answered"], ids["elsewhere"] = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    ids["cmd"], ids["applied"] = uuid.uuid4(), uuid.uuid4()
    _write(
        db,
        ops.insert(
            "tasks", id=ids["planning"], directive_id=ids["d"], kind="planning", instructions="plan"
        ),
        ops.insert(
            "directive_evaluations",
            id=ids["eval"],
            directive_id=ids["d"],
            chain_id=ids["chain"],
            step_id=ids["design"],
            task_id=ids["task2"],
            passed=True,
            composite_score=0.9,
            confidence_level="green",
            programmatic_results=[{"name": "pytest", "passed": True}],
        ),
        ops.insert(
            "directive_approvals",
            id=ids["pending"],
            directive_id=ids["d"],
            step_id=ids["lint"],
            approval_type="step_review",
            description="look",
            context={"score": 0.6},
        ),
        ops.insert(
            "directive_approvals",
            id=ids["answered"],
            directive_id=ids["d"],
            approval_type="step_review",
            description="seen",
            status="approved",
        ),
        ops.insert(
            "directive_approvals",
            id=ids["elsewhere"],
            directive_id=ids["done"],
            approval_type="directive_review",
            description="other",
        ),
        ops.insert("directive_commands", id=ids["cmd"], directive_id=ids["d"], command="pause"),
        ops.insert(
            "directive_commands", id=ids["applied"], command="stop", status="applied", args={}
        ),
        *[ops.append_event(ids["d"], f"e{n}", {"n": n}) for n in range(1, 6)],
    )
    return ids


def test_directive_reads(db: Database, world: dict[str, Any]) -> None:
    directive = db.reads.directive(world["d"])
    assert directive.status is models.DirectiveStatus.ACTIVE
    assert directive.requirements == [models.Requirement(id="R1", description="works")]
    assert directive.constraints == ["no network"]
    assert directive.last_event_seq == 5
    assert {d.id for d in db.reads.directives()} == {world["d"], world["done"]}
    assert [d.id for d in db.reads.live_directives()] == [world["d"]]
    with pytest.raises(NotFound):
        db.reads.directive(uuid.uuid4())


def test_chain_and_step_reads(db: Database, world: dict[str, Any]) -> None:
    chain = db.reads.current_chain(world["d"])
    assert chain is not None and chain.id == world["chain"] and chain.generation == 2
    assert [c.generation for c in db.reads.chains(world["d"])] == [1, 2]
    assert db.reads.current_chain(world["done"]) is None

    steps = db.reads.steps(world["chain"])
    assert [s.name for s in steps] == ["design", "lint", "build", "docs", "ship"]
    ship = db.reads.step(world["ship"])
    assert ship.depends_on == [world["build"], world["docs"]]
    assert ship.status is models.StepStatus.PENDING and ship.requirement_ids == ["R1"]
    with pytest.raises(NotFound):
        db.reads.step(uuid.uuid4())


def test_ready_steps_are_pending_steps_whose_dependencies_all_passed(
    db: Database, world: dict[str, Any]
) -> None:
    assert [s.name for s in db.reads.ready_steps(world["chain"])] == ["build", "docs"]
    _write(db, ops.transition("chain_steps", world["build"], "pending", "passed"))
    assert [s.name for s in db.reads.ready_steps(world["chain"])] == ["docs"]
    _write(db, ops.transition("chain_steps", world["docs"], "pending", "skipped"))
    assert [s.name for s in db.reads.ready_steps(world["chain"])] == ["ship"]


def test_events_after_a_sequence_number(db: Database, world: dict[str, Any]) -> None:
    events = db.reads.events_after(world["d"], after=2)
    assert [e.seq for e in events] == [3, 4, 5]
    assert events[0].event_type == "e3" and events[0].data == {"n": 3}
    assert events[0].severity is models.Severity.INFO
    assert [e.seq for e in db.reads.events_after(world["d"], after=0, limit=2)] == [1, 2]
    assert db.reads.events_after(world["d"], after=5) == []
    assert db.reads.events_after(world["done"]) == []


def test_pending_approvals(db: Database, world: dict[str, Any]) -> None:
    assert [a.id for a in db.reads.pending_approvals(world["d"])] == [world["pending"]]
    assert {a.id for a in db.reads.pending_approvals()} == {world["pending"], world["elsewhere"]}
    approval = db.reads.approval(world["pending"])
    assert approval.context == {"score": 0.6} and approval.step_id == world["lint"]
    assert approval.approval_type is models.ApprovalType.STEP_REVIEW
    assert db.reads.approval(world["answered"]).status is models.ApprovalStatus.APPROVED


def test_pending_commands(db: Database, world: dict[str, Any]) -> None:
    commands = db.reads.pending_commands()
    assert [c.id for c in commands] == [world["cmd"]]
    assert commands[0].command is models.CommandType.PAUSE
    assert db.reads.command(world["applied"]).status is models.CommandStatus.APPLIED
    _write(db, ops.transition("directive_commands", world["cmd"], "pending", "applied"))
    assert db.reads.pending_commands() == []


def test_tasks_and_evaluations(db: Database, world: dict[str, Any]) -> None:
    tasks = db.reads.tasks_of_step(world["design"])
    assert [t.attempt for t in tasks] == [1, 2]
    assert tasks[0].kind is models.TaskKind.STEP and tasks[0].status is models.TaskStatus.SUCCEEDED
    assert {t.id for t in db.reads.tasks_of_directive(world["d"])} == {
        world["task1"],
        world["task2"],
        world["planning"],
    }
    assert db.reads.task(world["planning"]).step_id is None
    assert db.reads.tasks_of_step(world["ship"]) == []

    (evaluation,) = db.reads.evaluations_of_step(world["design"])
    assert evaluation.task_id == world["task2"]
    assert evaluation.confidence_level is models.ConfidenceLevel.GREEN
    assert evaluation.programmatic_results == [{"name": "pytest", "passed": True}]
    assert [e.id for e in db.reads.evaluations_of_directive(world["d"])] == [world["eval"]]
