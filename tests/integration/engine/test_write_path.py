"""The engine's write path on a real PostgreSQL (issue 13): when the judge runs
nothing (only ``instant`` verifiers, no repository), a step's report, its verdict and
its moves running -> evaluating -> passed are one durable write; when the judge does
run something, "evaluating" is durable on its own before the judge starts."""

from __future__ import annotations

from typing import Any

import pytest
from engine_helpers import GreenVerifier

from directorate.actors import CallableRunner, DirectiveSpec, DirectiveStatus, StepSpec

pytestmark = pytest.mark.integration


class SlowGreen(GreenVerifier):
    instant = False  # as any verifier that does not say it is instant


def _step_events(engine: Any, directive_id: Any) -> dict[str, list[tuple[str, Any]]]:
    with engine.db.pool.connection() as conn:
        rows = conn.execute(
            "SELECT e.event_type, e.data->>'new_status', e.created_at, s.name"
            " FROM directive_events e JOIN chain_steps s ON s.id = e.step_id"
            " WHERE e.directive_id = %s ORDER BY e.seq",
            (directive_id,),
        ).fetchall()
    by_step: dict[str, list[tuple[str, Any]]] = {}
    for event_type, new_status, created_at, name in rows:
        label = f"{event_type}:{new_status}" if new_status else event_type
        by_step.setdefault(name, []).append((label, created_at))
    return by_step


@pytest.mark.parametrize("verifier", [GreenVerifier, SlowGreen], ids=["instant", "not-instant"])
def test_an_instant_judge_goes_in_the_write_of_the_report(
    engine_factory: Any, verifier: type[GreenVerifier]
) -> None:
    engine = engine_factory(
        runner=CallableRunner(lambda task, cancel: None), verifiers=[verifier()]
    )
    spec = DirectiveSpec(
        title="t",
        goal="g",
        autonomy_level="full_auto",
        steps=[StepSpec(name="a"), StepSpec(name="b", depends_on=["a"])],
    )
    directive_id = engine.submit(spec)
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED

    for name, events in _step_events(engine, directive_id).items():
        when = dict(events)
        labels = [label for label, _ in events]
        # The same events, in the same order, either way.
        assert labels == [
            "step_status_changed:ready",
            "step_status_changed:running",
            "step_started",
            "task_finished",
            "step_status_changed:evaluating",
            "evaluation_completed",
            "step_status_changed:passed",
        ], name
        one_write = {when["task_finished"], when["evaluation_completed"]}
        assert when["step_status_changed:evaluating"] in one_write
        if verifier is GreenVerifier:  # one transaction: one transaction time
            assert len(one_write) == 1, name
        else:  # the judge starts only once "evaluating" is committed
            assert when["evaluation_completed"] > when["step_status_changed:evaluating"], name
        assert when["step_status_changed:ready"] == when["step_started"]  # the dispatch


def test_wait_answers_an_end_it_heard_of_without_reading(
    engine_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ending is final once published (after its commit): a waiter that heard of
    it need not read the directive again (issue 13: the reads of many waiters)."""
    engine = engine_factory(runner=CallableRunner(lambda task, cancel: None))
    spec = DirectiveSpec(
        title="t", goal="g", autonomy_level="full_auto", steps=[StepSpec(name="a")]
    )
    directive_id = engine.submit(spec)
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED

    def no_read(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("wait read the directive again")

    monkeypatch.setattr(engine._ctx.reads, "directive", no_read)
    monkeypatch.setattr(engine._ctx.reads, "pending_approvals", no_read)
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED


@pytest.mark.parametrize("verifier", [GreenVerifier, SlowGreen], ids=["instant", "not-instant"])
def test_an_instant_review_goes_in_the_write_that_completes_the_directive(
    engine_factory: Any, verifier: type[GreenVerifier], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directive's review, when its judge runs nothing: judged on the directive
    actor's thread as it hears the chain is idle, rather than as a job whose report
    comes back as a message to read the directive again for."""
    from directorate.actors import workers

    jobs: list[str] = []
    evaluate = workers.Workers.evaluate

    def counted(self: Any, job: Any, *args: Any, **kwargs: Any) -> Any:
        jobs.append("evaluate")
        return evaluate(self, job, *args, **kwargs)

    monkeypatch.setattr(workers.Workers, "evaluate", counted)
    engine = engine_factory(
        runner=CallableRunner(lambda task, cancel: None), verifiers=[verifier()]
    )
    spec = DirectiveSpec(
        title="t", goal="g", autonomy_level="full_auto", steps=[StepSpec(name="a")]
    )
    directive_id = engine.submit(spec)
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
    with engine.db.pool.connection() as conn:
        rows = conn.execute(
            "SELECT event_type, created_at FROM directive_events"
            " WHERE directive_id = %s AND step_id IS NULL ORDER BY seq",
            (directive_id,),
        ).fetchall()
    when = dict(rows)
    # The verdict and the completion are one write either way (the review's message
    # led to it, or the step's report did).
    assert when["directive_reviewed"] == when["status_changed"] == when["directive_completed"]
    if verifier is GreenVerifier:
        assert jobs == []  # neither the step's evaluation nor the review was a job
    else:
        assert jobs == ["evaluate", "evaluate"]  # the step's, then the review
