"""Per-directive event sequence numbers: gap-free and unique under concurrency (point 7)."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from persistence_helpers import new_directive

from directorate.persistence import ops
from directorate.persistence.writer import Committed, Conflict, PersistenceClient

pytestmark = pytest.mark.integration


def test_concurrent_appends_from_two_writers_get_gap_free_unique_numbers(
    client: PersistenceClient, admin: psycopg.Connection[Any], dsn: str
) -> None:
    # Two writers (two connections, as two processes would have) and many threads.
    other = PersistenceClient(dsn)
    try:
        first, second = new_directive(client), new_directive(client)
        threads_n, per_thread = 16, 25
        returned: dict[Any, list[int]] = {first: [], second: []}
        conflicts: list[Conflict] = []
        lock = threading.Lock()

        def sender(index: int) -> None:
            writer = client if index % 2 else other
            for n in range(per_thread):
                directive_id = first if n % 2 else second
                statements = [ops.append_event(directive_id, "tick", {"i": index, "n": n})]
                if n % 5 == 0:
                    # A guard failing after the append must give its number back.
                    statements.append(
                        ops.transition("directives", directive_id, "completed", "failed")
                    )
                result = writer.write(*statements)
                with lock:
                    if isinstance(result, Committed):
                        returned[directive_id].append(result.scalar(0))
                    else:
                        conflicts.append(result)

        threads = [threading.Thread(target=sender, args=(i,)) for i in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert len(conflicts) == threads_n * 5
        for directive_id, seqs in returned.items():
            stored = [
                r[0]
                for r in admin.execute(
                    "SELECT seq FROM directive_events WHERE directive_id = %s ORDER BY seq",
                    (directive_id,),
                )
            ]
            assert stored == list(range(1, len(stored) + 1)), "a gap or a duplicate"
            assert sorted(seqs) == stored, "the numbers handed back are the stored ones"
        assert sum(len(s) for s in returned.values()) == threads_n * per_thread - len(conflicts)
    finally:
        other.stop()


def test_events_of_different_directives_are_numbered_independently(
    client: PersistenceClient,
) -> None:
    first, second = new_directive(client), new_directive(client)
    result = client.write(
        ops.append_event(first, "a"), ops.append_event(second, "a"), ops.append_event(first, "b")
    )
    assert isinstance(result, Committed)
    assert [result.scalar(i) for i in range(3)] == [1, 1, 2]
