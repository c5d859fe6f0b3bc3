"""What every actor of one engine shares: the database, the worker pools, the settings."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pykka

from directorate.persistence.database import Database
from directorate.persistence.embedded import directorate_home
from directorate.persistence.reads import Reads
from directorate.verifiers import Verifier

from .core.state import Settings
from .leases import FencedWriter
from .pool import ActorExecutor
from .runners import TaskRunner

if TYPE_CHECKING:  # workers -> evaluation -> context
    from .workers import Workers

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class EngineConfig:
    """How an engine runs (DESIGN §10)."""

    dsn: str | None = None
    """PostgreSQL; None: ``DIRECTORATE_DSN``, else the embedded server."""
    runner: TaskRunner | None = None
    """The TaskRunner for directives that name no agent of their own."""
    max_concurrent_tasks: int = 4
    max_concurrent_evaluations: int = 4
    actor_threads: int = 32
    """Threads the directive and step actors share (``actors.pool``): how many of them
    handle a message at once. A handler waits on a database read (one of the pool's
    8 connections) or on the writer's commit (a group commit takes every write waiting),
    never on CPU for long; 32 keep the connections busy and a commit's batch full, and
    more only add threads competing for the GIL. Idle actors hold none."""
    verifiers: list[Verifier] | None = None
    """Verifier objects added to every evaluation (embedding, tests)."""
    verifier_config: dict[str, Any] | None = None
    """Default ``[verifiers]`` configuration for directives that have none."""
    owner_id: str | None = None
    log_dir: Path | None = None
    """Agent logs and plan files; default ``$DIRECTORATE_HOME/logs``."""
    tick_interval_s: float = 1.0
    ask_timeout_s: float = 60.0
    approval_timeout_s: float | None = None
    """Approvals expire after this long (treated as denied); None: never."""
    recover: bool = True
    """Take directives up: at start, every live directive whose lease is free or
    expired, and on every tick those of engines that died (DESIGN §17), and apply
    the commands for them. False (``run``): drive only what this engine starts."""
    commands: bool = True
    """Apply the commands (``directive_commands``) for the directives this engine
    drives. False only for an engine that never drives one (``submit``)."""
    lease_ttl_s: float = 5.0
    """How long this engine's leases outlive its last heartbeat: a dead engine's
    directives are taken over this long after it stopped beating (plus a tick)."""
    heartbeat_interval_s: float = 1.0
    """How often the heartbeat renews the leases (well under ``lease_ttl_s``, so a
    few late beats lose nothing)."""
    worktree_dir: Path | None = None
    """Steps' worktrees; default ``$DIRECTORATE_HOME/worktrees``."""
    notify_webhooks: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    """Told of every directive's approvals, breaker trips and ends, besides each
    directive's own ``[notify] webhook`` (``directorate.actors.notify``)."""

    def resolved_log_dir(self) -> Path:
        return Path(self.log_dir) if self.log_dir else directorate_home() / "logs"

    def settings(self) -> Settings:
        return Settings(
            log_dir=self.resolved_log_dir(),
            approval_timeout_s=self.approval_timeout_s,
            worktree_dir=self.worktree_dir or directorate_home() / "worktrees",
        )


@attrs.define
class EngineContext:
    """Shared by one engine's actors. ``halted`` is set when the engine shuts down."""

    db: Database
    reads: Reads
    """The database's reads, waiting out an outage until the engine halts."""
    config: EngineConfig
    workers: Workers
    settings: Settings
    writer: FencedWriter
    """Every write for a directive, fenced by this engine's lease on it."""
    actors: ActorExecutor
    """Where the directive and step actors run (their turns); shut down after them."""
    on_actor_stopped: Callable[[uuid.UUID], None] = lambda directive_id: None
    halted: threading.Event = attrs.field(factory=threading.Event)
    step_actors: dict[str, pykka.ActorRef[Any]] = attrs.field(factory=dict)
    """Every live step actor by urn (the engine stops what is left at shutdown)."""
    lock: threading.Lock = attrs.field(factory=threading.Lock)
