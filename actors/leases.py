"""The leases one engine holds, and its writes fenced by them (DESIGN §17).

Every write an engine makes for a directive carries the lease it holds on it (owner
and epoch, ``Tx.statements(fence=...)``): a write whose lease has been taken matches
no row and changes nothing. ``FencedWriter.commit`` turns that into ``LeaseLost``
and tells the engine, which stops driving the directive.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pykka

from directorate.persistence import ops
from directorate.persistence.database import Database
from directorate.persistence.errors import LeaseLost
from directorate.persistence.ownership import Lease, LeaseSum
from directorate.persistence.writer import Conflict, WriteResult

from .tx import Tx


class Leases:
    """Directive id -> the lease this engine holds on it. Thread-safe."""

    def __init__(self, engine_id: uuid.UUID) -> None:
        self.engine_id = engine_id
        self._held: dict[uuid.UUID, Lease] = {}
        self._sum = LeaseSum()
        """Of ``_held``, kept as it changes: the heartbeat reads it every beat."""
        self._lock = threading.Lock()

    def hold(self, lease: Lease) -> None:
        with self._lock:
            replaced = self._held.get(lease.directive_id)
            if replaced is not None:
                self._sum = self._sum.minus(replaced)
            self._held[lease.directive_id] = lease
            self._sum = self._sum.plus(lease)

    def get(self, directive_id: uuid.UUID) -> Lease | None:
        with self._lock:
            return self._held.get(directive_id)

    def drop(self, lease: Lease) -> bool:
        """Forget ``lease`` (not a newer one of the same directive); False if not held."""
        with self._lock:
            if self._held.get(lease.directive_id) != lease:
                return False
            del self._held[lease.directive_id]
            self._sum = self._sum.minus(lease)
            return True

    def held(self) -> list[Lease]:
        with self._lock:
            return list(self._held.values())

    def total(self) -> LeaseSum:
        """The sum of the leases held (``LeaseSum``), without copying them."""
        with self._lock:
            return self._sum

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)


class FencedWriter:
    """Commits a directive's writes under the engine's lease on it."""

    def __init__(self, db: Database, leases: Leases, lost: Callable[[Lease, str], None]) -> None:
        self.db = db
        self.leases = leases
        self._lost = lost

    def lease(self, directive_id: uuid.UUID) -> Lease:
        lease = self.leases.get(directive_id)
        if lease is None:
            raise LeaseLost(f"directive {directive_id}: this engine does not hold its lease")
        return lease

    def commit(self, tx: Tx) -> WriteResult:
        """``tx`` durable, or a ``Conflict`` of one of its own guards; ``LeaseLost``
        (and nothing written) when the engine no longer holds the directive's lease."""
        lease = self.lease(tx.directive_id)
        return self._checked(tx, lease, tx.commit(self.db, fence=lease))

    def submit(self, tx: Tx) -> pykka.Future[WriteResult]:
        """``commit`` without waiting: the future's value is the write's result."""
        lease = self.lease(tx.directive_id)
        return tx.submit(self.db, fence=lease).map(lambda result: self._checked(tx, lease, result))

    def release(self, directive_id: uuid.UUID) -> pykka.Future[WriteResult] | None:
        """Give the directive's lease up, after every write of ours already queued (the
        writer keeps their order); None when this engine does not hold it."""
        lease = self.leases.get(directive_id)
        if lease is None or not self.leases.drop(lease):
            return None
        # Dropped first: the heartbeat must not take the release for a loss.
        tx = Tx(directive_id).op(ops.release_lease(lease))
        engine = str(self.leases.engine_id)
        tx.event("lease_released", {"engine": engine}, actor_id=engine)
        return tx.submit(self.db)

    def _checked(self, tx: Tx, lease: Lease, result: WriteResult) -> WriteResult:
        if isinstance(result, Conflict) and result.op_index == tx.fence_index:
            self._lost(lease, f"a write was refused: {tx.what()}")
            raise LeaseLost(
                f"directive {tx.directive_id}: another engine holds its lease now "
                f"(this engine's, epoch {lease.epoch}, was taken)"
            )
        return result
