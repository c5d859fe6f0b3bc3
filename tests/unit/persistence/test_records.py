"""Records from database rows, and the transition tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from directorate.persistence.models import (
    DIRECTIVE_TRANSITIONS,
    STEP_TRANSITIONS,
    Directive,
    DirectiveStatus,
    Step,
    StepStatus,
    StepType,
)


def test_directive_from_row_converts_enums_and_nested_records() -> None:
    row = {
        "id": uuid.uuid4(),
        "title": "t",
        "goal": "g",
        "status": "active",
        "requirements": [{"id": "r1", "description": "d"}],
        "acceptance_criteria": [],
        "constraints": ["c"],
        "autonomy_level": "manual",
        "started_at": datetime(2026, 1, 1, tzinfo=UTC),
        "unknown_future_column": 1,
    }
    directive = Directive.from_row(row)
    assert directive.status is DirectiveStatus.ACTIVE
    assert directive.requirements[0].id == "r1"
    assert directive.started_at == row["started_at"]


def test_step_from_row_accepts_uuid_strings() -> None:
    dep = uuid.uuid4()
    step = Step.from_row(
        {
            "id": str(uuid.uuid4()),
            "chain_id": uuid.uuid4(),
            "directive_id": uuid.uuid4(),
            "name": "a",
            "step_type": "test",
            "depends_on": [str(dep)],
            "status": "evaluating",
        }
    )
    assert step.depends_on == [dep]
    assert step.step_type is StepType.TEST and step.status is StepStatus.EVALUATING


def test_terminal_statuses_have_no_way_out() -> None:
    for status in (DirectiveStatus.COMPLETED, DirectiveStatus.FAILED, DirectiveStatus.CANCELLED):
        assert status.terminal and not DIRECTIVE_TRANSITIONS[status]
    assert STEP_TRANSITIONS[StepStatus.PASSED] == frozenset()
    assert DirectiveStatus.PAUSED in DIRECTIVE_TRANSITIONS[DirectiveStatus.ACTIVE]
    assert DirectiveStatus.COMPLETED not in DIRECTIVE_TRANSITIONS[DirectiveStatus.PAUSED]
