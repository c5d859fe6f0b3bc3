"""Steps that decide their first move on rows handed over rather than read (issue 13),
on a real PostgreSQL through a real engine: the directive actor's start hands each
new step its row and the directive as the start's write left it; a passing step
hands its dependents the directive as its own last write left it. A dispatch decided
so holds only while the directive's totals and limits are as handed over and no
breaker waits for a human: anything that moved in between makes it conflict, and the
step reads and decides again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from engine_helpers import wait_for
from psycopg.types.json import Jsonb

from directorate.actors import CallableRunner, DirectiveSpec, DirectiveStatus, StepSpec, step_actor
from directorate.actors import messages as m
from directorate.persistence.reads import Reads

pytestmark = pytest.mark.integration

DIAMOND = [
    StepSpec(name="a"),
    StepSpec(name="b", depends_on=["a"]),
    StepSpec(name="c", depends_on=["a"]),
    StepSpec(name="d", depends_on=["b", "c"]),
]

A_THEN_B = DirectiveSpec(
    title="t",
    goal="g",
    autonomy_level="full_auto",
    max_total_cost_usd=10.0,
    steps=[StepSpec(name="a"), StepSpec(name="b", depends_on=["a"])],
)


def steps_by_name(engine: Any, directive_id: uuid.UUID) -> dict[str, Any]:
    chain = engine.db.reads.current_chain(directive_id)
    return {s.name: s for s in engine.db.reads.steps(chain.id)}


def count_step_reads(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    read: list[uuid.UUID] = []
    original = Reads.step_state

    def counted(self: Reads, step_id: uuid.UUID) -> dict[str, Any]:
        read.append(step_id)
        return original(self, step_id)

    monkeypatch.setattr(Reads, "step_state", counted)
    return read


def before_first_dependency_passed(
    monkeypatch: pytest.MonkeyPatch, dsn: str, sql: Callable[[], tuple[str, tuple[Any, ...]]]
) -> None:
    """Run ``sql`` (committed, on a connection of its own) after the first dependency's
    pass is committed and before its dependents hear of it: what another engine's
    write, or a person's, could do in that gap."""
    told = step_actor._tell
    done: list[bool] = []

    def hooked(ref: Any, message: Any) -> None:
        if isinstance(message, m.DependencyPassed) and not done:
            done.append(True)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(*sql())
        told(ref, message)

    monkeypatch.setattr(step_actor, "_tell", hooked)


@pytest.mark.timeout(60)
def test_a_diamond_takes_every_step_up_without_reading_it(
    engine_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = count_step_reads(monkeypatch)
    engine = engine_factory(runner=CallableRunner(lambda task, cancel: None))
    directive_id = engine.submit(
        DirectiveSpec(
            title="t", goal="g", autonomy_level="full_auto", max_total_cost_usd=10.0, steps=DIAMOND
        )
    )
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    assert read == []  # four steps dispatched, reported and passed on what they were handed
    tasks = engine.db.reads.tasks_of_directive(directive_id)
    assert sorted(t.budget_usd for t in tasks) == [10.0] * 4
    assert {s.name: s.status for s in steps_by_name(engine, directive_id).values()} == {
        name: "passed" for name in "abcd"
    }


@pytest.mark.timeout(60)
def test_a_dispatch_on_totals_that_moved_meanwhile_reads_and_tells_the_true_budget(
    engine_factory: Any, monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    read = count_step_reads(monkeypatch)
    engine = engine_factory(runner=CallableRunner(lambda task, cancel: {"cost_usd": 1.0}))
    directive_id = engine.submit(A_THEN_B)
    before_first_dependency_passed(
        monkeypatch,
        dsn,
        lambda: (
            "UPDATE directives SET total_cost_usd = total_cost_usd + 2 WHERE id = %s",
            (directive_id,),
        ),
    )
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED
    steps = {name: s.id for name, s in steps_by_name(engine, directive_id).items()}
    tasks = {t.step_id: t for t in engine.db.reads.tasks_of_directive(directive_id)}
    assert tasks[steps["a"]].budget_usd == 10.0
    # Handed $9 left; the $2 spent since made the dispatch conflict, and the read told $7.
    assert tasks[steps["b"]].budget_usd == 7.0
    assert read == [steps["b"]]
    assert engine.db.reads.directive(directive_id).total_cost_usd == 4.0


@pytest.mark.timeout(60)
def test_a_breaker_opened_meanwhile_stops_a_dispatch_on_what_was_handed_over(
    engine_factory: Any, monkeypatch: pytest.MonkeyPatch, dsn: str
) -> None:
    engine = engine_factory(runner=CallableRunner(lambda task, cancel: None))
    directive_id = engine.submit(A_THEN_B)
    context = {"limit": "max_total_cost_usd", "figure": 10.0, "threshold": 10.0}
    before_first_dependency_passed(
        monkeypatch,
        dsn,
        lambda: (
            "INSERT INTO directive_approvals (id, directive_id, approval_type, description,"
            " context) VALUES (%s, %s, 'circuit_breaker', 'a breaker', %s)",
            (uuid.uuid4(), directive_id, Jsonb(context)),
        ),
    )
    engine.start_directive(directive_id)

    def step_b() -> Any:
        b = steps_by_name(engine, directive_id)["b"]
        return b if b.status == "ready" else None

    wait_for(step_b)
    a = steps_by_name(engine, directive_id)["a"]
    # a ran and passed; b waits for the human, with no task
    assert [t.step_id for t in engine.db.reads.tasks_of_directive(directive_id)] == [a.id]
    assert a.status == "passed"
    assert engine.db.reads.directive(directive_id).status is DirectiveStatus.ACTIVE
