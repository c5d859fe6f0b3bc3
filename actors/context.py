"""What every actor of one engine shares: the database, the worker pools, the settings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pykka

from directorate.persistence.database import Database
from directorate.persistence.embedded import directorate_home

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class EngineConfig:
    """How an engine runs (DESIGN §10)."""

    dsn: str | None = None
    """PostgreSQL; None: ``DIRECTORATE_DSN``, else the embedded server."""
    runner: Any = None
    """The TaskRunner for directives that name no agent of their own."""
    max_concurrent_tasks: int = 4
    max_concurrent_evaluations: int = 4
    verifiers: list[Any] | None = None
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

    def resolved_log_dir(self) -> Path:
        return Path(self.log_dir) if self.log_dir else directorate_home() / "logs"


def approval_expiry(timeout_s: float | None) -> datetime | None:
    """When an approval opened now expires (``EngineConfig.approval_timeout_s``)."""
    return datetime.now(UTC) + timedelta(seconds=timeout_s) if timeout_s else None


class Workers:
    """The bounded pools where long work runs: agent tasks and evaluations.

    Jobs report back by telling an actor; a job whose actor has gone is dropped.
    """

    def __init__(self, max_tasks: int, max_evaluations: int) -> None:
        self.tasks = ThreadPoolExecutor(max_tasks, thread_name_prefix="directorate-task")
        self.evaluations = ThreadPoolExecutor(
            max_evaluations, thread_name_prefix="directorate-eval"
        )
        self._cancels: set[threading.Event] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    def run_task(
        self,
        job: Callable[[threading.Event], Any],
        reply_to: pykka.ActorRef[Any],
        reply: Callable[[Any], Any],
        cancel: threading.Event,
    ) -> None:
        with self._lock:
            self._cancels.add(cancel)

        def run() -> None:
            try:
                result = job(cancel)
            # Even SystemExit from an embedded callable: the step must hear of it, or
            # it would wait for a report forever. The actor decides what it means.
            except BaseException as exc:
                log.exception("task job failed")
                result = exc
            try:
                _tell(reply_to, reply(result))
            finally:
                # Only now: "idle" must mean every result has reached its actor.
                with self._lock:
                    self._cancels.discard(cancel)
                    self._idle.notify_all()

        self._submit(self.tasks, run, what="task")

    def evaluate(
        self, job: Callable[[], Any], reply_to: pykka.ActorRef[Any], reply: Callable[[Any], Any]
    ) -> None:
        def run() -> None:
            try:
                result = job()
            except BaseException as exc:
                log.exception("evaluation job failed")
                result = exc
            _tell(reply_to, reply(result))

        self._submit(self.evaluations, run, what="evaluation")

    def _submit(self, pool: ThreadPoolExecutor, run: Callable[[], None], *, what: str) -> None:
        try:
            pool.submit(run)
        except RuntimeError:  # shut down: the step is taken up again on recovery
            log.info("engine shutting down: %s not started", what)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no task job runs (each has reported to its actor); False on timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: not self._cancels, timeout)

    def running_count(self) -> int:
        with self._lock:
            return len(self._cancels)

    def cancel_all(self) -> int:
        with self._lock:
            cancels = list(self._cancels)
        for cancel in cancels:
            cancel.set()
        return len(cancels)

    def shutdown(self) -> None:
        self.tasks.shutdown(wait=True, cancel_futures=True)
        self.evaluations.shutdown(wait=True, cancel_futures=True)


def _tell(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        log.debug("dropped %s: its actor has stopped", type(message).__name__)


@attrs.define
class EngineContext:
    db: Database
    config: EngineConfig
    workers: Workers
    on_actor_stopped: Callable[[Any], None] = lambda directive_id: None
