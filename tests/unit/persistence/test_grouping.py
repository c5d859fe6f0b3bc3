"""grouping.schedule: which writes of a batch run their statements together."""

from __future__ import annotations

from collections.abc import Hashable

import pytest

from directorate.persistence.grouping import Shape, schedule

START: Shape = ("update directives", "insert chain")
MOVE: Shape = ("update directives",)


@pytest.mark.parametrize(
    ("shapes", "owners", "expected"),
    [
        pytest.param([], [], [], id="an empty batch"),
        pytest.param([START], ["a"], [[0]], id="one write"),
        pytest.param(
            [START, START, START], ["a", "b", "c"], [[0, 1, 2]], id="same shape, owners apart"
        ),
        pytest.param(
            [START, MOVE, START, MOVE],
            ["a", "b", "c", "d"],
            [[0, 2], [1, 3]],
            id="two shapes: each group where its first write stands",
        ),
        pytest.param(
            [START, START, MOVE],
            ["a", "b", "a"],
            [[0], [1], [2]],
            id="an owner that sends twice keeps its writes alone and in order",
        ),
        pytest.param(
            [(), START, START],
            ["a", "a", "b"],
            [[0], [1, 2]],
            id="a write that sends nothing of its own (events only) does not count",
        ),
        pytest.param(
            [None, START, START],
            ["a", "a", "b"],
            [[0], [1], [2]],
            id="a write that cannot be grouped still counts for its owner",
        ),
        pytest.param(
            [START, START, START],
            [None, "b", "c"],
            [[0], [1, 2]],
            id="a write without an owner runs alone",
        ),
        pytest.param([None, None], ["a", "b"], [[0], [1]], id="nothing groupable"),
    ],
)
def test_schedule(
    shapes: list[Shape | None], owners: list[Hashable | None], expected: list[list[int]]
) -> None:
    assert schedule(shapes, owners) == expected


def test_every_write_is_scheduled_once() -> None:
    shapes: list[Shape | None] = [START, MOVE, None, (), START, MOVE, START]
    owners: list[Hashable | None] = ["a", "b", "c", "d", "a", None, "e"]
    order = [i for group in schedule(shapes, owners) for i in group]
    assert sorted(order) == list(range(len(shapes)))


def test_shapes_and_owners_must_pair_up() -> None:
    with pytest.raises(ValueError, match="2 shapes for 1 owners"):
        schedule([START, START], ["a"])
