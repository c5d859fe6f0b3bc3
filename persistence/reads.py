"""Read queries for the engine and the command line (any thread, pooled connections)."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from .errors import NotFound, PersistenceUnavailable
from .models import Approval, Chain, Command, Directive, Evaluation, Event, Step, Task
from .queries import query

R = TypeVar("R", Directive, Chain, Step, Task, Evaluation, Approval, Event, Command)


class Reads:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self._pool = pool

    def rows(self, name: str, **params: Any) -> list[dict[str, Any]]:
        try:
            with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                cur.execute(query(name), params)
                return cur.fetchall()
        except psycopg.OperationalError as exc:
            raise PersistenceUnavailable(f"read {name} failed: {exc}") from exc

    def _many(self, cls: type[R], name: str, **params: Any) -> list[R]:
        return [cls.from_row(row) for row in self.rows(name, **params)]

    def _one(self, cls: type[R], name: str, what: str, **params: Any) -> R:
        rows = self.rows(name, **params)
        if not rows:
            raise NotFound(f"no {what} {next(iter(params.values()))}")
        return cls.from_row(rows[0])

    def directive(self, directive_id: uuid.UUID) -> Directive:
        return self._one(Directive, "directive", "directive", id=directive_id)

    def directives(self, limit: int = 100) -> list[Directive]:
        return self._many(Directive, "directives", limit=limit)

    def live_directives(self) -> list[Directive]:
        return self._many(Directive, "live_directives")

    def current_chain(self, directive_id: uuid.UUID) -> Chain | None:
        chains = self._many(Chain, "current_chain", directive_id=directive_id)
        return chains[0] if chains else None

    def chains(self, directive_id: uuid.UUID) -> list[Chain]:
        return self._many(Chain, "chains", directive_id=directive_id)

    def steps(self, chain_id: uuid.UUID) -> list[Step]:
        return self._many(Step, "steps", chain_id=chain_id)

    def step(self, step_id: uuid.UUID) -> Step:
        return self._one(Step, "step", "step", id=step_id)

    def ready_steps(self, chain_id: uuid.UUID) -> list[Step]:
        return self._many(Step, "ready_steps", chain_id=chain_id)

    def events_after(
        self, directive_id: uuid.UUID, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        return self._many(
            Event, "events_after", directive_id=directive_id, after=after, limit=limit
        )

    def pending_approvals(self, directive_id: uuid.UUID | None = None) -> list[Approval]:
        return self._many(Approval, "pending_approvals", directive_id=directive_id)

    def approval(self, approval_id: uuid.UUID) -> Approval:
        return self._one(Approval, "approval", "approval", id=approval_id)

    def pending_commands(self, limit: int = 100) -> list[Command]:
        return self._many(Command, "pending_commands", limit=limit)

    def command(self, command_id: uuid.UUID) -> Command:
        return self._one(Command, "command", "command", id=command_id)

    def tasks_of_step(self, step_id: uuid.UUID) -> list[Task]:
        return self._many(Task, "tasks_of_step", step_id=step_id)

    def tasks_of_directive(self, directive_id: uuid.UUID) -> list[Task]:
        return self._many(Task, "tasks_of_directive", directive_id=directive_id)

    def task(self, task_id: uuid.UUID) -> Task:
        return self._one(Task, "task", "task", id=task_id)

    def evaluations_of_step(self, step_id: uuid.UUID) -> list[Evaluation]:
        return self._many(Evaluation, "evaluations_of_step", step_id=step_id)

    def evaluations_of_directive(self, directive_id: uuid.UUID) -> list[Evaluation]:
        return self._many(Evaluation, "evaluations_of_directive", directive_id=directive_id)
