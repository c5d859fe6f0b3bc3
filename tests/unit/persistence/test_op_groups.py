"""The statements a group of same-shaped ops becomes (``Op.group``), and how each op's
rows are told apart again; the database side is in test_pg_groups."""

from __future__ import annotations

import uuid

import pytest

from directorate.persistence import ops

A, B, C = (uuid.UUID(int=n) for n in (1, 2, 3))


def _report(directive_id: uuid.UUID, task_id: uuid.UUID) -> ops.Op:
    return ops.record_task_result(
        directive_id,
        task_id,
        status="succeeded",
        exit_code=0,
        cost=0.5,
        summary=None,
        output_tail=None,
    )


def test_single_row_inserts_become_one_multi_row_insert() -> None:
    inserts = [
        ops.insert("directive_commands", id=i, command="pause", args={"n": 1}) for i in (A, B)
    ]
    how = inserts[0].group
    assert how is not None and how.key == inserts[1].group.key  # type: ignore[union-attr]
    combined = how.combine(inserts)
    assert combined is not None
    assert combined.raw  # sent unparsed: PostgreSQL's own placeholders
    assert combined.sql == (
        "INSERT INTO directive_commands (id, command, args) VALUES ($1, $2, $3), ($4, $5, $6)"
    )
    params = list(combined.params)
    assert params[:2] == [A, "pause"] and params[3:5] == [B, "pause"]
    assert params[2].obj == {"n": 1}  # as the single statement adapts it (jsonb)
    assert how.split(inserts, []) == [(), ()]


def test_updates_by_id_become_one_update_from_values_returning_the_ids() -> None:
    moves = [
        ops.transition("directives", i, "draft", "active", title=f"t{i.int}") for i in (A, B, C)
    ]
    how = moves[0].group
    assert how is not None
    combined = how.combine(moves)
    assert combined is not None
    assert combined.sql.startswith("UPDATE directives AS t SET status = v.status, title = v.title")
    typed = (
        "SELECT x0.id AS _id, x0.status AS _expected, x0.status AS status, x0.title AS title"
        " FROM directives x0 WHERE false"
    )
    assert f"FROM ({typed} UNION ALL VALUES ($1, $2, $3, $4), ($5," in combined.sql
    assert combined.sql.endswith("WHERE t.id = v._id AND t.status = v._expected RETURNING t.id")
    assert list(combined.params)[:4] == [A, "draft", "active", "t1"]
    # B's guard missed: it returned no row.
    assert how.split(moves, [(A,), (C,)]) == [((A,),), (), ((C,),)]


@pytest.mark.parametrize(
    ("ops_", "why"),
    [
        pytest.param(
            [ops.update("directives", A, title="x"), ops.update("directives", A, title="y")],
            "one row twice: which one matched would not be known",
            id="the same row twice",
        ),
        pytest.param(
            [ops.insert("directive_commands", id=uuid.uuid4(), command="pause")] * 15_001,
            "past the parameters one statement may hold",
            id="too many parameters",
        ),
        pytest.param(
            [ops.move_step(A, "running", "evaluating"), ops.move_step(A, "running", "passed")],
            "one step twice",
            id="the same step moved twice",
        ),
        pytest.param(
            [_report(A, B), _report(A, C)],
            "one directive's totals twice in one UPDATE",
            id="two reports of one directive",
        ),
        pytest.param(
            [_report(A, B), _report(C, B)],
            "one task's report twice",
            id="one task reported twice",
        ),
    ],
)
def test_a_group_that_cannot_be_one_statement_runs_one_by_one(ops_: list[ops.Op], why: str) -> None:
    how = ops_[0].group
    assert how is not None
    assert how.combine(ops_) is None, why


@pytest.mark.parametrize(
    ("op", "grouped"),
    [
        pytest.param(ops.update("directives", A, title="x"), True, id="update by id"),
        pytest.param(ops.move_step(A, "running", "passed", progress=True), True, id="a move"),
        pytest.param(_report(A, B), True, id="a task's report"),
        pytest.param(
            ops.move_step(A, "ready", "running", directive_active=True),
            False,
            id="a dispatch's move (the dispatch groups whole)",
        ),
        pytest.param(
            ops.dispatch_step(
                ops.move_step(A, "ready", "running", directive_active=True, attempt=1),
                id=B,
                step_id=A,
            ),
            True,
            id="a dispatch",
        ),
        pytest.param(ops.transition("directives", A, "draft", "active"), True, id="one status"),
        pytest.param(
            ops.transition("directives", A, ["draft", "paused"], "active"),
            False,
            id="one of several statuses",
        ),
        pytest.param(ops.append_event(A, "noted"), False, id="a statement of queries.sql"),
    ],
)
def test_which_statements_may_be_grouped(op: ops.Op, grouped: bool) -> None:
    assert (op.group is not None) is grouped
