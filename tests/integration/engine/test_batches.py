"""Directives submitted and started many at a time (``submit_many``, ``start_many``)."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from directorate.actors import (
    CallableRunner,
    DirectiveSpec,
    DirectiveStatus,
    InvalidInput,
    InvalidTransition,
    NotFound,
    StepSpec,
)
from directorate.actors import messages as m

TWO_STEPS = [StepSpec(name="one"), StepSpec(name="two", depends_on=["one"])]


def spec(title: str = "batch", **changes: Any) -> DirectiveSpec:
    values: dict[str, Any] = {"goal": "many at once", "autonomy_level": "full_auto"}
    values["steps"] = TWO_STEPS
    return DirectiveSpec(title=title, **(values | changes))


def directive_count(engine: Any) -> int:
    with engine.db.pool.connection() as conn:
        (count,) = conn.execute("SELECT count(*) FROM directives").fetchone()
    return int(count)


@pytest.mark.timeout(120)
def test_many_specs_are_written_together_and_started_together(engine_factory: Any) -> None:
    engine = engine_factory(runner=CallableRunner(lambda task, cancel: None))
    before = engine.db.writer.stats()["transactions"]
    ids = engine.submit_many([spec(f"batch {i}") for i in range(60)])
    assert len(set(ids)) == 60
    assert [engine.db.reads.directive(i).title for i in ids] == [f"batch {i}" for i in range(60)]
    assert all(engine.db.reads.directive(i).status is DirectiveStatus.DRAFT for i in ids)
    # Handed to the writer together, they shared its commits.
    assert engine.db.writer.stats()["transactions"] - before < 60

    statuses = engine.start_many(ids)
    assert statuses == [DirectiveStatus.ACTIVE] * 60  # explicit steps: active at once
    for directive_id in ids:
        assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED


@pytest.mark.timeout(60)
def test_one_bad_spec_among_good_ones_writes_nothing(engine_factory: Any, tmp_path: Path) -> None:
    engine = engine_factory(runner=CallableRunner(lambda task, cancel: None))
    specs = [spec(f"good {i}") for i in range(5)]
    # A spec is checked against this machine too, as submit checks it.
    specs.insert(3, spec("bad", local_path="/nonexistent/directorate-batch"))
    with pytest.raises(InvalidInput, match=r"^specs\[3\]: local_path"):
        engine.submit_many(specs)
    not_a_repository = spec("plain folder", local_path=str(tmp_path))
    with pytest.raises(InvalidInput, match=r"^b\.toml: local_path: .* not in a git repository"):
        engine.submit_many([spec("a"), not_a_repository], names=["a.toml", "b.toml"])
    assert directive_count(engine) == 0


@pytest.mark.timeout(60)
def test_start_many_gives_each_directive_its_own_outcome(engine_factory: Any) -> None:
    release = threading.Event()

    def held(task: Any, cancel: threading.Event) -> None:
        # Keeps the started directives active while the test looks at them.
        while not (release.is_set() or cancel.is_set()):
            release.wait(0.05)

    engine = engine_factory(runner=CallableRunner(held))
    first, second, started = engine.submit_many([spec("first"), spec("second"), spec("started")])
    assert engine.start_directive(started) is DirectiveStatus.ACTIVE
    unknown = uuid.uuid4()
    try:
        outcomes = engine.start_many([first, started, unknown, "not-an-id", second])
        assert outcomes[0] is DirectiveStatus.ACTIVE
        assert isinstance(outcomes[1], InvalidTransition)  # as start_directive raises it
        assert isinstance(outcomes[2], NotFound)
        assert isinstance(outcomes[3], InvalidInput)
        assert outcomes[4] is DirectiveStatus.ACTIVE
        with pytest.raises(InvalidTransition):
            engine.start_directive(started)
        assert engine.db.reads.directive(first).status is DirectiveStatus.ACTIVE
        assert engine.db.reads.directive(second).status is DirectiveStatus.ACTIVE
    finally:
        release.set()
    for directive_id in (first, second, started):
        assert engine.wait(directive_id, timeout=30) is DirectiveStatus.COMPLETED


@pytest.mark.timeout(60)
def test_a_start_from_a_draft_read_before_it_moved_decides_again(engine_factory: Any) -> None:
    # start_many hands each actor the draft it read, so that the actor need not read it
    # again; one that moved meanwhile (cancelled here) must not start from that read.
    engine = engine_factory(runner=CallableRunner(lambda task, cancel: None))
    (directive_id,) = engine.submit_many([spec("stale")])
    draft = engine.db.reads.directive(directive_id)
    assert engine.stop_directive(directive_id) is DirectiveStatus.CANCELLED
    sent = engine._send(directive_id, m.Start(draft=draft), spawn=True, known=draft)
    outcome = engine._status_of(directive_id, m.Start(), sent)
    assert isinstance(outcome, InvalidTransition), outcome
    assert "cancelled" in str(outcome)
    assert engine.db.reads.directive(directive_id).status is DirectiveStatus.CANCELLED
    assert engine.db.reads.current_chain(directive_id) is None
