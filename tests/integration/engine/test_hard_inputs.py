"""Hard inputs through the Python API on a real PostgreSQL (issue 11, point 3).

Text past a cap, or a ``local_path`` that is not a folder, is refused by
``Engine.submit`` with one line naming the field, and nothing is written. Text at
the cap (4 MB: four-byte characters) is stored and the directive runs, planning and
step tasks carrying it. What an agent prints, 10 MB of it, is stored bounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from engine_helpers import Scripted

from directorate.actors import DirectiveSpec, DirectiveStatus, InvalidInput, StepSpec
from directorate.actors.runners import TAIL_BYTES
from directorate.persistence.models import Requirement, WorkspaceSpec
from directorate.persistence.validation import MAX_INPUT_CHARS, MAX_TEXT_CHARS

pytestmark = pytest.mark.integration

TEN_MB = 10 * 1024 * 1024
AT_THE_CAP = "\N{MUSICAL SYMBOL G CLEF}" * MAX_INPUT_CHARS
"""The longest goal allowed, and four bytes a character: 4 MB in UTF-8."""


def _rows(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchall()
            for table in ("directives", "directive_events", "tasks", "chain_steps")
        }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            DirectiveSpec(title="t", goal="g" * TEN_MB),
            f"goal: {TEN_MB} characters, more than the {MAX_INPUT_CHARS} allowed",
            id="goal",
        ),
        pytest.param(
            DirectiveSpec(
                title="t", goal="g", requirements=[Requirement(id="r", description="r" * TEN_MB)]
            ),
            f"requirements[0].description: {TEN_MB} characters, more than the",
            id="requirement",
        ),
        pytest.param(
            DirectiveSpec(title="t", goal="g", steps=[StepSpec(name="a", task_plan="p" * TEN_MB)]),
            f"steps[0].task_plan: {TEN_MB} characters, more than the",
            id="task-plan",
        ),
        pytest.param(
            DirectiveSpec(title="t", goal="g", local_path="/nonexistent/directorate-test"),
            "local_path: /nonexistent/directorate-test does not exist",
            id="local-path-missing",
        ),
        pytest.param(
            DirectiveSpec(title="t", goal="g", local_path=__file__),
            f"local_path: {__file__} is not a directory",
            id="local-path-a-file",
        ),
    ],
)
def test_submit_refuses_in_one_line_naming_the_field_and_writes_nothing(
    engine_factory: Any, dsn: str, spec: DirectiveSpec, message: str
) -> None:
    engine = engine_factory()
    before = _rows(dsn)
    with pytest.raises(InvalidInput) as raised:
        engine.submit(spec)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
    assert _rows(dsn) == before


@pytest.mark.timeout(120)
def test_a_goal_at_the_cap_is_stored_and_the_directive_runs(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    """It used to hang submit (over ~1 MB, in the writer's pipeline) before anything ran."""
    scripted.write({"plan": {"steps": [{"name": "only"}]}})
    engine = engine_factory(runner=scripted.runner())
    work = tmp_path / "work"
    work.mkdir()
    directive_id = engine.submit(
        DirectiveSpec(
            title="t",
            goal=AT_THE_CAP,
            autonomy_level="full_auto",
            local_path=str(work),
            workspace=WorkspaceSpec(isolation="shared"),
        )
    )
    assert engine.db.reads.directive(directive_id).goal == AT_THE_CAP
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=90) is DirectiveStatus.COMPLETED
    [planning] = scripted.runs("planning")
    [step] = scripted.runs("step")
    assert AT_THE_CAP in planning["instructions"] and AT_THE_CAP in step["instructions"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("behaviour", "summary"),
    [
        pytest.param({"output_chars": TEN_MB}, "did only", id="10-mb-of-output"),
        # Past the runner's look-back for the report: no summary, no cost, no failure.
        pytest.param({"summary_chars": TEN_MB}, None, id="a-10-mb-summary-line"),
        pytest.param({"summary_chars": 3 * 1024 * 1024}, "s" * 4000, id="a-3-mb-summary-is-cut"),
        pytest.param(
            {"summary": "half a pair: \ud800!", "output_chars": 10},
            "half a pair: \ufffd!",
            id="a-lone-surrogate-in-the-summary",
        ),
    ],
)
def test_what_an_agent_prints_is_stored_bounded(
    engine_factory: Any, scripted: Scripted, behaviour: dict[str, Any], summary: str | None
) -> None:
    scripted.write({"steps": {"only": behaviour}})
    engine = engine_factory(runner=scripted.runner())
    directive_id = engine.submit(
        DirectiveSpec(
            title="t", goal="g", autonomy_level="full_auto", steps=[StepSpec(name="only")]
        )
    )
    engine.start_directive(directive_id)
    assert engine.wait(directive_id, timeout=90) is DirectiveStatus.COMPLETED
    [task] = [t for t in engine.db.reads.tasks_of_directive(directive_id) if t.step_id]
    assert task.status == "succeeded"
    assert task.summary == summary
    assert task.output_tail is not None and len(task.output_tail.encode()) <= TAIL_BYTES
    finished = [
        e for e in engine.db.reads.events_after(directive_id) if e.event_type == "task_finished"
    ]
    assert finished and all(len(str(e.data)) < 2 * MAX_TEXT_CHARS for e in finished)
