"""Fenced writes and the heartbeat's check of its leases, without a database."""

from __future__ import annotations

import uuid

import pytest

from directorate.actors.leases import Leases
from directorate.actors.ownership import lost_leases
from directorate.actors.tx import Tx
from directorate.persistence import ops
from directorate.persistence.ownership import Lease, LeaseSum

D1, D2, D3 = (uuid.UUID(int=i) for i in (1, 2, 3))
ME = uuid.UUID(int=99)


def lease(directive_id: uuid.UUID, epoch: int = 1) -> Lease:
    return Lease(directive_id, ME, epoch)


@pytest.mark.parametrize(
    ("events", "fenced", "last_is"),
    [
        (0, False, None),  # no fence, no events: the statements alone
        (2, False, "append_events"),
        (2, True, "append_events"),  # the events' statement is the fence
        (0, True, "fence"),  # no event: a statement of its own
    ],
)
def test_the_fence_is_the_last_statement_and_its_guard(
    events: int, fenced: bool, last_is: str | None
) -> None:
    tx = Tx(D1).op(ops.update("directives", D1, title="x"))
    for n in range(events):
        tx.event("note", {"n": n})
    statements, _ = tx.statements(lease(D1, 7) if fenced else None)
    assert len(statements) == 1 + (1 if events or fenced else 0)
    if last_is is None:
        return
    from directorate.persistence.queries import query

    last = statements[tx.fence_index]
    assert last.sql == query(last_is)
    assert last.guard is fenced
    if fenced:
        assert isinstance(last.params, dict)
        assert (last.params["owner"], last.params["epoch"]) == (ME, 7)


@pytest.mark.parametrize(
    ("before", "still", "held", "lost"),
    [
        pytest.param([lease(D1)], [lease(D1)], {D1: 1}, [], id="renewed"),
        pytest.param([lease(D1)], [lease(D1)], {}, [D1], id="taken"),
        pytest.param([lease(D1)], [lease(D1)], {D1: 3}, [D1], id="taken-and-given-back"),
        pytest.param([lease(D1)], [], {}, [], id="given-up-meanwhile"),
        pytest.param([], [lease(D2)], {}, [], id="claimed-meanwhile"),
        pytest.param([lease(D1), lease(D3)], [lease(D1), lease(D3)], None, [D1, D3], id="stopped"),
        pytest.param([lease(D1)], [lease(D1, 2)], {D1: 2}, [], id="claimed-again-at-a-new-epoch"),
    ],
)
def test_which_leases_the_heartbeat_finds_lost(
    before: list[Lease],
    still: list[Lease],
    held: dict[uuid.UUID, int] | None,
    lost: list[uuid.UUID],
) -> None:
    found = lost_leases(before, still, held)
    assert [lease.directive_id for lease, _ in found] == lost
    assert all(why for _, why in found)


def test_the_sum_of_held_leases_follows_every_hold_and_drop() -> None:
    engine_id = uuid.uuid4()
    leases = Leases(engine_id)
    a, b = uuid.uuid4(), uuid.uuid4()
    first_a, second_a, only_b = (
        Lease(a, engine_id, 1),
        Lease(a, engine_id, 2),
        Lease(b, engine_id, 7),
    )

    def summed(*held: Lease) -> LeaseSum:
        total = LeaseSum()
        for lease in held:
            total = total.plus(lease)
        return total

    assert leases.total() == LeaseSum(0, 0, 0)
    leases.hold(first_a)
    leases.hold(only_b)
    assert (
        leases.total() == summed(first_a, only_b) == LeaseSum(2, 8, (a.int >> 68) + (b.int >> 68))
    )
    leases.hold(second_a)  # a newer lease of the same directive replaces the older
    assert leases.total() == summed(second_a, only_b)
    assert not leases.drop(first_a)  # not held any more: nothing changes
    assert leases.total() == summed(second_a, only_b)
    assert leases.drop(only_b)
    assert leases.total() == summed(second_a)
    assert leases.drop(second_a)
    assert leases.total() == LeaseSum()
