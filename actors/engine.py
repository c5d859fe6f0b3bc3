"""The Engine: facade and root supervisor (DESIGN §3, §10).

``Engine.start(config)`` opens the database (running migrations), starts the
event bus, the worker pools and the tick thread, and recovers every live
directive. Each live directive has one DirectiveActor; the engine forwards
calls to it with ``ask`` (so a refused transition raises in the caller), and
starts a fresh actor from the database whenever none is running.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import attrs
import psycopg
import pykka

from directorate.persistence.database import Database
from directorate.persistence.errors import (
    DirectorateError,
    EngineTimeout,
    InvalidInput,
    InvalidTransition,
    LeaseLost,
)
from directorate.persistence.models import (
    Approval,
    Chain,
    CommandStatus,
    CommandType,
    Directive,
    DirectiveSpec,
    DirectiveStatus,
    Severity,
    Step,
    Task,
)
from directorate.persistence.ownership import Claimed, Lease
from directorate.persistence.writer import Committed, Op, WriteResult
from directorate.verifiers.supervised import SupervisedProcess

from . import messages as m
from .bus import Bus
from .commands import CommandConsumer, issue_command, wait_for_outcome
from .context import EngineConfig, EngineContext
from .core.changes import TaskProcessStarted, TaskRecorded
from .directive_actor import DirectiveActor
from .leases import FencedWriter
from .notify import Notifier
from .ownership import Ownership
from .pool import ActorExecutor
from .runners import TaskResult, runner_for
from .signals import ApprovalRequired, DirectiveStatusChanged
from .submission import check_spec, check_specs, creation
from .tx import Tx
from .workers import Workers
from .workspace import GitError
from .workspaces import start_result_branch
from .writes import stale_attempt, write

log = logging.getLogger(__name__)

_TOUCHED_KEPT = 100_000
READ_CHUNK = 1_000
"""Directives read by one query of ``start_many``."""
"""Directives whose changes ``wait`` tells apart before it forgets them all."""
PROCESS_RECORD_WAIT_S = 5.0
"""How long a starting agent's runner waits for its pid to be committed."""
CLAIM_CHUNK = 1000
"""Leases one statement of ``start_many`` claims (it locks their rows meanwhile)."""


@attrs.frozen(kw_only=True)
class Snapshot:
    """A directive as it stands: its record, current chain, steps, pending approvals."""

    directive: Directive
    chain: Chain | None
    steps: list[Step]
    pending_approvals: list[Approval]


@attrs.frozen(kw_only=True)
class ShutdownReport:
    """What a shutdown did, and what it had to leave at its deadline."""

    cancelled_tasks: int
    directives: int
    agents_left: int = 0
    """Agents still running at the deadline (their steps run again on recovery)."""
    actors_left: int = 0
    """Actors that had not stopped at the deadline."""
    unwritten: tuple[str, ...] = ()
    """Writes given up because the database was away (the directive each was for and
    its events); recovery takes the directives up from what was written."""
    released: int = 0
    """Leases given up, so that another engine takes their directives up at once."""

    def describe(self) -> str:
        text = f"stopped {self.directives} directive actor(s)"
        if not self.cancelled_tasks:
            text += "; no task was running"
        else:
            text += (
                f"; cancelled {self.cancelled_tasks} running task(s), which run again as a "
                "new attempt when an engine recovers them"
            )
        if self.agents_left or self.actors_left:
            text += (
                f"; left at the deadline: {self.agents_left} agent(s) still stopping, "
                f"{self.actors_left} actor(s) not stopped"
            )
        if self.released:
            text += f"; released {self.released} lease(s)"
        if self.unwritten:
            shown = "; ".join(self.unwritten[:10]) + ("; ..." if len(self.unwritten) > 10 else "")
            text += (
                f"; {len(self.unwritten)} write(s) not written, the database being "
                f"unavailable: {shown}"
            )
        return text


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._changed = threading.Condition()
        self._touched: collections.Counter[uuid.UUID] = collections.Counter()
        """Status changes and approvals heard of, by directive (what ``wait`` waits on)."""
        self._ended: dict[uuid.UUID, DirectiveStatus] = {}
        """Terminal statuses heard of: final, so ``wait`` answers them without a read."""
        self._bus = Bus()
        self._bus.listeners.append(self._on_published)
        try:
            # The engine rides out an outage: its writes wait for the database.
            self.db = Database.open(
                config.dsn, on_commit=self._bus.on_commit, write_patience_s=None
            )
        except BaseException:
            self._bus.stop()
            raise
        try:
            self._ownership = Ownership(
                self.db,
                lease_ttl_s=config.lease_ttl_s,
                heartbeat_interval_s=config.heartbeat_interval_s,
                takes_over=config.recover,
                on_lost=self._lease_lost,
            )
        except BaseException:
            self.db.close()
            self._bus.stop()
            raise
        self._leases = self._ownership.leases
        self._notifier = Notifier(self.db.reads.directive, config.notify_webhooks).start()
        self._bus.listeners.append(self._notifier.heard)
        self._workers = Workers(
            config.max_concurrent_tasks,
            config.max_concurrent_evaluations,
            orphaned=self._record_orphan,
            started=self._record_process,
        )
        halted = threading.Event()
        self._ctx = EngineContext(
            db=self.db,
            reads=self.db.reads.waiting(halted),
            halted=halted,
            config=config,
            workers=self._workers,
            settings=config.settings(),
            writer=FencedWriter(self.db, self._leases, self._lease_lost),
            actors=ActorExecutor(config.actor_threads, name="directorate-actor"),
            on_actor_stopped=self._forget,
        )
        self._actors: dict[uuid.UUID, pykka.ActorRef[Any]] = {}
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._ticker = threading.Thread(
            target=self._tick_loop, name="directorate-tick", daemon=True
        )
        self._ticker.start()
        self.consumer = CommandConsumer(self).start() if config.commands else None
        """Applies the commands for the directives this engine drives (or may take)."""

    @property
    def engine_id(self) -> uuid.UUID:
        """This engine's identity (its row in ``engines``, the owner in its leases)."""
        return self._ownership.engine_id

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def start(cls, config: EngineConfig | None = None) -> Engine:
        engine = cls(config or EngineConfig())
        if engine.config.recover:
            engine.recover()
        return engine

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def recover(self) -> list[uuid.UUID]:
        """Take up every directive in planning, active or paused whose lease is free or
        expired (DESIGN §9, §17); the ones other engines drive are left to them."""
        return self._take_up(self._ownership.claim())

    def _take_up(self, claimed: list[Claimed]) -> list[uuid.UUID]:
        """Drive the directives whose leases were just taken: say so, then recover."""
        taken = []
        for claim in claimed:
            self._record_claim(claim)  # queued before anything the new actor writes
            with self._lock:
                ref = self._actors.get(claim.lease.directive_id)
                if ref is None or not ref.is_alive():
                    self._actors[claim.lease.directive_id] = self._spawn(
                        claim.lease.directive_id, m.Recover()
                    )
            taken.append(claim.lease.directive_id)
        return taken

    def _record_claim(self, claim: Claimed) -> None:
        lease = claim.lease
        tx = Tx(lease.directive_id)
        data: dict[str, Any] = {
            "engine": self.engine_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "epoch": lease.epoch,
        }
        if claim.previous is None:
            tx.event("lease_acquired", data, actor_id=str(self.engine_id))
        else:
            data |= {
                "from_engine": claim.previous,
                "from_host": claim.previous_host,
                "from_pid": claim.previous_pid,
                "after_s": None if claim.silent_s is None else round(claim.silent_s, 3),
            }
            tx.event("taken_over", data, severity=Severity.WARNING, actor_id=str(self.engine_id))
            log.warning(
                "directive %s: taken over from engine %s (pid %s on %s), silent for %.1f s",
                lease.directive_id,
                claim.previous,
                claim.previous_pid,
                claim.previous_host,
                claim.silent_s or 0.0,
            )
        tx.submit(self.db, fence=lease)

    def _take(self, directive: Directive) -> bool:
        """Hold this directive's lease: already, or by taking it if it is free or
        expired (False: a live engine holds it)."""
        if self._leases.get(directive.id) is not None:
            return True
        claimed = self._ownership.claim(statuses=[directive.status], ids=[directive.id])
        for claim in claimed:
            self._record_claim(claim)
        return bool(claimed)

    def take_for_command(self, directive_id: uuid.UUID | None) -> bool:
        """Before a command for ``directive_id`` is applied here: True when this engine
        holds its lease (taking it if free or expired), or when no engine is to drive
        it (no such directive, a finished one: the command is then refused)."""
        if directive_id is None:
            return True
        try:
            directive = self.db.reads.directive(directive_id)
        except DirectorateError:
            return True
        if directive.status.terminal:
            return True
        return self._take(directive)

    def shutdown(self, timeout: float = 60.0) -> ShutdownReport:
        """Stop within one deadline: cancel running agents (their steps run again on
        recovery) and let them report, stop every actor, commit what is pending, close
        the database. Whatever is still running at the deadline is left, and said."""
        if self._closing.is_set():
            return ShutdownReport(cancelled_tasks=0, directives=0)
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        self._closing.set()
        if self.consumer is not None:  # no command is applied while the engine stops
            self.consumer.stop(timeout=min(left(), 10.0))
        self._ctx.halted.set()
        # If the database is away, writes stop waiting for it in time to stop the
        # rest before the deadline (and are reported as not written).
        self.db.writer.give_up_by(deadline - 0.2 * timeout)
        with self._lock:
            refs = list(self._actors.values())
            self._actors.clear()
        for ref in refs:
            _tell(ref, m.Halt())
        cancelled = self._workers.cancel_all()
        # Let the cancelled agents die and their reports reach their actors, so the
        # database says "cancelled", not "running", for work that is gone.
        agents_left = 0 if self._workers.wait_idle(left()) else self._workers.running_count()
        with self._ctx.lock:
            steps = list(self._ctx.step_actors.values())
        stopping = [ref.stop(block=False) for ref in [*refs, *steps]]
        actors_left = 0
        for future in stopping:
            try:
                future.get(timeout=left())
            except pykka.Timeout:
                actors_left += 1
            except pykka.ActorDeadError:
                pass
        # Every actor has stopped (or the deadline passed): their threads can go.
        self._ctx.actors.shutdown(timeout=min(left(), 10.0))
        # A finished directive's delivery and cleanup (started by its actor, which has
        # stopped now): let them end, and be recorded.
        self._workers.wait_background(left())
        self._workers.shutdown()
        self._ticker.join(timeout=min(left(), 5.0))
        released = self._release_leases(timeout=left())
        self._ownership.stop(timeout=min(left(), 15.0) * 0.5)  # the rest is the database's
        told = False

        def tell_last_events() -> None:
            # The writer has stopped, the readers are open: the last events committed
            # (an end, say) reach the bus's listeners, and the webhooks can still read
            # whose directive it was (its title, its own webhook).
            nonlocal told
            told = True
            self._bus.stop(timeout=max(left(), 1.0))
            self._notifier.stop(timeout=min(max(left(), 1.0), 10.0))

        try:
            unwritten = self.db.close(timeout=left(), while_readable=tell_last_events)
        finally:
            if not told:  # the writer's stop failed: tell what there is
                tell_last_events()
        report = ShutdownReport(
            cancelled_tasks=cancelled,
            directives=len(refs),
            agents_left=agents_left,
            actors_left=actors_left,
            unwritten=unwritten,
            released=released,
        )
        log.info("engine shut down: %s", report.describe())
        return report

    def _release_leases(self, timeout: float) -> int:
        """Give up every lease (after every other write of ours): the next engine
        takes the directives up at once instead of after the leases expire."""
        held = [self._ctx.writer.release(lease.directive_id) for lease in self._leases.held()]
        futures = [future for future in held if future is not None]
        released = 0
        deadline = time.monotonic() + timeout
        for future in futures:
            try:
                result = future.get(timeout=max(0.0, deadline - time.monotonic()))
            except (DirectorateError, pykka.Timeout) as exc:
                log.info("a lease was not released (%s); it expires by itself", exc)
                continue
            released += isinstance(result, Committed)
        return released

    def _lease_lost(self, lease: Lease, why: str) -> None:
        """Another engine holds ``lease``'s directive now: stop driving it (its agents
        with it) and say so. Called from any thread, once per lease."""
        if not self._leases.drop(lease):
            return
        with self._lock:
            ref = self._actors.pop(lease.directive_id, None)
        if ref is not None:
            _tell(ref, m.LeaseGone(why))
        log.warning("directive %s: this engine lost its lease: %s", lease.directive_id, why)
        tx = Tx(lease.directive_id)
        tx.event(
            "lease_lost",
            {"engine": self.engine_id, "epoch": lease.epoch, "reason": why},
            severity=Severity.WARNING,
            actor_id=str(self.engine_id),
        )
        tx.submit(self.db)  # not fenced: it says what happened, and changes nothing

    # ----------------------------------------------------------------- directives

    def submit(self, spec: DirectiveSpec) -> uuid.UUID:
        """Create a directive (draft) from a spec; returns its id.

        ``InvalidInput`` names the first bad field, and then nothing is written.
        """
        check_spec(spec)
        directive_id, tx = creation(spec, self.config.owner_id)
        tx.commit(self.db)
        return directive_id

    def submit_many(
        self, specs: Sequence[DirectiveSpec], *, names: Sequence[str] | None = None
    ) -> list[uuid.UUID]:
        """Create a draft for each spec; returns their ids, in order.

        Every spec is checked before anything is written: ``InvalidInput`` names the
        first bad one (``names[i]``, else ``specs[i]``) and its field, and then nothing
        is written. The writes are handed to the writer together, so that they share
        its commits instead of waiting for one each."""
        check_specs(specs, names)
        created = [creation(spec, self.config.owner_id) for spec in specs]
        pending = [tx.submit(self.db) for _, tx in created]
        for index, future in enumerate(pending):
            try:
                future.get()
            except InvalidInput as exc:
                # A row PostgreSQL refuses although the spec passed its checks fails alone
                # (the writer's contract): the others are written.
                name = names[index] if names is not None else f"specs[{index}]"
                raise InvalidInput(f"{name}: {exc}") from None
        return [directive_id for directive_id, _ in created]

    def start_directive(self, directive_id: uuid.UUID) -> DirectiveStatus:
        outcome = self.start_many([directive_id])[0]
        if isinstance(outcome, DirectorateError):
            raise outcome
        return outcome

    def start_many(self, ids: Sequence[uuid.UUID]) -> list[DirectiveStatus | DirectorateError]:
        """Start every directive of ``ids``; for each, in order, the status
        ``start_directive`` returns for it or the error it raises (``NotFound``,
        ``InvalidTransition`` for one that is no draft, ``RunnerError``, ...).

        Done together, so that starting many costs little more than starting one:
        one claim for all the leases, and every directive actor is told ``Start``
        before the first answer is waited for (their commits share the writer's)."""
        outcomes: dict[int, DirectiveStatus | DirectorateError] = {}
        drafts: dict[int, Directive] = {}
        wanted: dict[int, uuid.UUID] = {}
        for index, given in enumerate(ids):
            try:
                wanted[index] = as_id(given, "directive")
            except DirectorateError as exc:
                outcomes[index] = exc
        known = self._read_all(list(wanted.values()))
        for index, directive_id in wanted.items():
            try:
                drafts[index] = self._startable(directive_id, known.get(directive_id))
            except DirectorateError as exc:
                outcomes[index] = exc
        self._take_all(list(drafts.values()))
        theirs = [i for i, d in drafts.items() if self._leases.get(d.id) is None]
        for index in theirs:  # another engine is starting it: the start is its to apply
            outcomes[index] = self._status_of(drafts.pop(index).id, m.Start(), None)
        recorded = {}
        for index, directive in list(drafts.items()):
            try:
                recorded[index], drafts[index] = self._start_workspace(directive)
            except DirectorateError as exc:
                outcomes[index] = exc
                del drafts[index]
        sent: dict[int, pykka.Future[Any] | None] = {}
        for index, directive in drafts.items():
            try:
                self._workspace_recorded(directive, recorded[index])
                # The actor decides from the draft read here rather than reading it again.
                start = m.Start(draft=directive)
                sent[index] = self._send(directive.id, start, spawn=True, known=directive)
            except DirectorateError as exc:
                outcomes[index] = exc
        for index, future in sent.items():
            outcomes[index] = self._status_of(drafts[index].id, m.Start(), future)
        return [outcomes[index] for index in range(len(ids))]

    def _read_all(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, Directive]:
        """The directives of ``ids`` that exist: a read per thousand, not one each."""
        found: dict[uuid.UUID, Directive] = {}
        for chunk in range(0, len(ids), READ_CHUNK):
            found.update(self.db.reads.directives_by_id(ids[chunk : chunk + READ_CHUNK]))
        return found

    def _startable(self, directive_id: uuid.UUID, known: Directive | None = None) -> Directive:
        """The draft to start; what ``start_directive`` refuses before changing anything.
        ``known``: the directive, just read (None: read it, NotFound when there is none)."""
        directive = known or self.db.reads.directive(directive_id)
        if directive.status is not DirectiveStatus.DRAFT:
            raise InvalidTransition(directive.status, DirectiveStatus.PLANNING, "directive")
        # Before anything is committed: a start refused for want of a runner changes nothing.
        runner_for(directive.agent, self.config.runner)
        return directive

    def _take_all(self, directives: list[Directive]) -> None:
        """``_take`` for many drafts: one claim for the leases not held yet."""
        wanted = [d.id for d in directives if self._leases.get(d.id) is None]
        for chunk in range(0, len(wanted), CLAIM_CHUNK):
            ids = wanted[chunk : chunk + CLAIM_CHUNK]
            claimed = self._ownership.claim(
                statuses=[DirectiveStatus.DRAFT], ids=ids, limit=len(ids)
            )
            for claim in claimed:
                self._record_claim(claim)

    def _start_workspace(
        self, directive: Directive
    ) -> tuple[pykka.Future[WriteResult] | None, Directive]:
        """Make the directive's result branch (git, so here, on the caller's thread, not
        an actor's) and hand its record to the writer: that record's future (None when
        it has one already or needs none) and the directive as the record leaves it.
        A start tried again reuses the branch."""
        if directive.result_branch is not None:
            return None, directive
        try:
            started = start_result_branch(directive)
        except GitError as exc:
            raise InvalidInput(f"workspace: {exc}") from None
        if started is None:
            return None, directive
        tx = Tx(directive.id)
        tx.op(
            Op(
                "UPDATE directives SET repository = %s, base_ref = %s, base_sha = %s,"
                " result_branch = %s WHERE id = %s AND status = 'draft'",
                (
                    started.repository,
                    started.base_ref,
                    started.base_sha,
                    started.result_branch,
                    directive.id,
                ),
                guard=True,
            )
        )
        tx.event(
            "workspace_created",
            {
                "repository": started.repository,
                "base": started.base_ref or started.base_sha,
                "base_sha": started.base_sha,
                "branch": started.result_branch,
            },
        )
        recorded = attrs.evolve(
            directive,
            repository=started.repository,
            base_ref=started.base_ref,
            base_sha=started.base_sha,
            result_branch=started.result_branch,
        )
        return self._ctx.writer.submit(tx), recorded

    def _workspace_recorded(
        self, directive: Directive, recorded: pykka.Future[WriteResult] | None
    ) -> None:
        """The result branch's record committed, else ``InvalidTransition``: the draft
        moved meanwhile (another start won)."""
        if recorded is not None and not isinstance(recorded.get(), Committed):
            status = self.db.reads.directive(directive.id).status
            raise InvalidTransition(status, DirectiveStatus.PLANNING, "directive")

    def pause(self, directive_id: uuid.UUID, *, by: str | None = None) -> DirectiveStatus:
        return self._ask_status(directive_id, m.Pause(by=by))

    def resume(self, directive_id: uuid.UUID, *, by: str | None = None) -> DirectiveStatus:
        return self._ask_status(directive_id, m.Resume(by=by))

    def stop_directive(self, directive_id: uuid.UUID, *, by: str | None = None) -> DirectiveStatus:
        return self._ask_status(directive_id, m.Stop(by=by))

    def regenerate_chain(
        self, directive_id: uuid.UUID, reason: str, *, by: str | None = None
    ) -> uuid.UUID | None:
        """Supersede the chain and plan a new one; returns the superseded chain's id."""
        old = self._ask(directive_id, m.Regenerate(reason=reason, by=by))
        return old if isinstance(old, uuid.UUID) else None

    def approve(
        self,
        approval_id: uuid.UUID,
        responded_by: str = "user",
        note: str | None = None,
        **raise_limit: float,
    ) -> None:
        self._answer(approval_id, True, responded_by, note, raise_limit or None)

    def deny(
        self, approval_id: uuid.UUID, responded_by: str = "user", note: str | None = None
    ) -> None:
        self._answer(approval_id, False, responded_by, note, None)

    def _answer(
        self,
        approval_id: uuid.UUID,
        approved: bool,
        by: str,
        note: str | None,
        raise_limit: dict[str, float] | None,
    ) -> None:
        approval_id = as_id(approval_id, "approval")
        approval = self.db.reads.approval(approval_id)
        self._ask(
            approval.directive_id,
            m.AnswerApproval(approval_id, approved, by, note, raise_limit),
        )

    def snapshot(self, directive_id: uuid.UUID) -> Snapshot:
        directive_id = as_id(directive_id, "directive")
        directive = self.db.reads.directive(directive_id)
        chain = self.db.reads.current_chain(directive_id)
        return Snapshot(
            directive=directive,
            chain=chain,
            steps=self.db.reads.steps(chain.id) if chain else [],
            pending_approvals=self.db.reads.pending_approvals(directive_id),
        )

    def wait(self, directive_id: uuid.UUID, timeout: float | None = None) -> DirectiveStatus:
        """Block until the directive is terminal, paused, or waits on a human; returns
        its status then (or when ``timeout`` runs out)."""
        directive_id = as_id(directive_id, "directive")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._changed:
                seen = self._touched[directive_id]
                ended = self._ended.get(directive_id)
                if ended is not None:
                    return ended
                # These reads wait out an outage: a directive goes on meanwhile.
                directive = self._ctx.reads.directive(directive_id)
                if directive.status.terminal or directive.status is DirectiveStatus.PAUSED:
                    return directive.status
                if self._ctx.reads.pending_approvals(directive_id):
                    return directive.status
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return directive.status
                # Woken by the bus when this directive changes (not by every other's:
                # many waiters would read for each of them); the timeout also covers
                # changes made by other processes.
                self._changed.wait_for(
                    functools.partial(self._changed_since, directive_id, seen),
                    timeout=min(remaining or 1.0, 1.0),
                )

    def _changed_since(self, directive_id: uuid.UUID, seen: int) -> bool:
        return self._touched[directive_id] != seen

    # ----------------------------------------------------------------- internals

    def _ask_status(self, directive_id: uuid.UUID, message: Any) -> DirectiveStatus:
        status = self._ask(directive_id, message)
        assert isinstance(status, DirectiveStatus), status
        return status

    def _status_of(
        self, directive_id: uuid.UUID, message: Any, sent: pykka.Future[Any] | None
    ) -> DirectiveStatus | DirectorateError:
        """``_outcome`` as a status, or the error it raised (for a batch)."""
        try:
            status = self._outcome(directive_id, message, sent)
        except DirectorateError as exc:
            return exc
        assert isinstance(status, DirectiveStatus), status
        return status

    def _ask(self, directive_id: uuid.UUID, message: Any) -> object:
        directive_id = as_id(directive_id, "directive")
        return self._outcome(directive_id, message, self._send(directive_id, message))

    def _send(
        self,
        directive_id: uuid.UUID,
        message: Any,
        *,
        spawn: bool = False,
        known: Directive | None = None,
    ) -> pykka.Future[Any] | None:
        """Ask the directive's actor here without waiting (starting one from the
        database if none runs): its answer's future; None when a live engine drives the
        directive, which is to apply ``message``. ``known``: the directive, just read."""
        if self._closing.is_set():
            raise InvalidInput("the engine is shutting down")
        with self._lock:
            ref = self._actors.get(directive_id)
            if ref is None or not ref.is_alive():
                # NotFound for a bad id
                directive = known or self.db.reads.directive(directive_id)
                # A draft has nothing to control but its start (and no actor to leave behind).
                draft_not_started = directive.status is DirectiveStatus.DRAFT and not (
                    spawn or isinstance(message, m.Stop)
                )
                if directive.status.terminal or draft_not_started:
                    raise InvalidTransition(directive.status, _target(message), "directive")
                ref = None
                if self._take(directive):
                    ref = self._spawn(directive_id, None if spawn else m.Recover())
                    self._actors[directive_id] = ref
        return None if ref is None else ref.ask(message, block=False)

    def _outcome(
        self, directive_id: uuid.UUID, message: Any, sent: pykka.Future[Any] | None
    ) -> object:
        """The answer to ``message`` sent by ``_send``: the actor's, else (``sent`` None,
        or the lease taken meanwhile) that of the engine that drives the directive."""
        if sent is None:  # a live engine drives it: that engine applies the request
            return self._forward(directive_id, message)
        try:
            return sent.get(timeout=self.config.ask_timeout_s)
        except LeaseLost:  # taken by another engine meanwhile: the request is for it now
            return self._forward(directive_id, message)
        except pykka.ActorDeadError:
            directive = self.db.reads.directive(directive_id)
            raise InvalidTransition(directive.status, _target(message), "directive") from None
        except pykka.Timeout as exc:
            raise EngineTimeout(
                f"directive {directive_id} did not answer {type(message).__name__.lower()} "
                f"within {self.config.ask_timeout_s:g} s; it may still apply it"
            ) from exc

    def _forward(self, directive_id: uuid.UUID, message: Any) -> object:
        """Have the engine that drives the directive apply ``message``, as a durable
        command (DESIGN §12): its answer is this one's."""
        kind, args = _as_command(message)
        command_id = issue_command(self.db, kind, directive_id, args)
        command = wait_for_outcome(self.db, command_id, timeout=self.config.ask_timeout_s)
        if command.status is CommandStatus.PENDING:
            raise EngineTimeout(
                f"directive {directive_id} is driven by another engine, which did not apply "
                f"{kind} within {self.config.ask_timeout_s:g} s; it may still apply it"
            )
        if command.status is CommandStatus.REJECTED:
            raise DirectorateError(command.reason or f"{kind} was rejected")
        if isinstance(message, m.Regenerate | m.AnswerApproval):
            return None
        if command.result is not None:  # what the command did, not what happened since
            return DirectiveStatus(command.result)
        return self.db.reads.directive(directive_id).status

    def _spawn(self, directive_id: uuid.UUID, first: Any) -> pykka.ActorRef[Any]:
        ref = DirectiveActor.start(self._ctx, directive_id)
        if first is not None:
            ref.tell(first)
        return ref

    def _forget(self, directive_id: uuid.UUID) -> None:
        with self._lock:
            ref = self._actors.get(directive_id)
            if ref is not None and not ref.is_alive():
                self._actors.pop(directive_id, None)

    def _on_published(self, event: Any) -> None:
        if isinstance(event, DirectiveStatusChanged | ApprovalRequired):
            with self._changed:
                if len(self._touched) > _TOUCHED_KEPT:  # a daemon's years: start afresh
                    self._touched.clear()  # (a waiter then reads again within a second)
                    self._ended.clear()
                self._touched[event.directive_id] += 1
                if isinstance(event, DirectiveStatusChanged):
                    status = DirectiveStatus(event.new_status)
                    if status.terminal:  # published once committed, and never undone
                        self._ended[event.directive_id] = status
                self._changed.notify_all()

    def _tick_loop(self) -> None:
        """Tick only the directives that need it (an approval expired, the wall-time
        limit passed): one query for all, instead of a load per directive per tick."""
        while not self._closing.wait(self.config.tick_interval_s):
            if self._ownership.may_take_over():
                try:
                    self._take_up(self._ownership.claim())
                except (psycopg.Error, DirectorateError) as exc:
                    log.warning("looking for directives to take over failed: %s", exc)
            self._release_finished()
            with self._lock:
                live = dict(self._actors)
            if not live:
                continue
            try:
                due = self._ctx.reads.due_directives(list(live))
            except DirectorateError as exc:
                log.warning("tick skipped: %s", exc)
                continue
            for directive_id in due:
                ref = live.get(directive_id)
                if ref is not None:
                    _tell(ref, m.Tick())

    def _release_finished(self) -> None:
        """Give up the leases of finished directives once nothing of theirs is left
        here (no actor, no wrap-up, no unfinished task): an engine holds, and its
        heartbeat checks, only what it still drives."""
        with self._lock:
            idle = [
                lease.directive_id
                for lease in self._leases.held()
                if not ((ref := self._actors.get(lease.directive_id)) and ref.is_alive())
            ]
        if not idle or self._workers.background_running():
            return
        try:
            finished = self.db.reads.finished_directives(idle)
        except DirectorateError as exc:
            log.info("finished directives' leases kept for now: %s", exc)
            return
        for directive_id in finished:
            self._ctx.writer.release(directive_id)

    def _record_orphan(self, task_id: uuid.UUID, result: TaskResult) -> None:
        """A task reported after its actor stopped: store the report (and its cost)."""
        task = self._ctx.reads.task(task_id)
        step = self._ctx.reads.step(task.step_id) if task.step_id else None
        changes = [TaskRecorded(task_id=task_id, result=result, step=step)]
        try:
            self._ctx.writer.commit(write(task.directive_id, changes).tx)
        except LeaseLost:  # its engine's no more: a stale attempt, never the step's outcome
            stale = stale_attempt(
                task.directive_id,
                task_id,
                result,
                engine_id=self.engine_id,
                step_name=step.name if step else None,
            )
            stale.commit(self.db)

    def _record_process(self, task: Task, process: SupervisedProcess) -> None:
        """An agent runs: record its processes in the task's row. Waited for only
        briefly: the runner has an agent to watch (its timeout, a cancel), and the
        write stays queued and commits even if this gives up on it."""
        change = TaskProcessStarted(task_id=task.id, process=process, engine_id=self.engine_id)
        try:
            future = self._ctx.writer.submit(write(task.directive_id, [change]).tx)
            future.get(timeout=PROCESS_RECORD_WAIT_S)
        except LeaseLost:  # the directive's actor is stopping this agent
            log.info(
                "task %s: its directive's lease is lost; pid %d not recorded", task.id, process.pid
            )
        except pykka.Timeout:
            log.warning(
                "task %s: the record of its agent's pid %d is not committed yet",
                task.id,
                process.pid,
            )

    def live_actor_count(self) -> int:
        """Directive actors running here (one per directive this engine drives)."""
        with self._lock:
            return sum(1 for ref in self._actors.values() if ref.is_alive())

    def actor_stats(self) -> dict[str, int]:
        """Directive actors, step actors, and the pool they share: its threads started,
        turns waiting for a thread, and pooled actors not yet stopped."""
        with self._ctx.lock:
            steps = len(self._ctx.step_actors)
        pool = self._ctx.actors.stats()
        return {
            "directive_actors": self.live_actor_count(),
            "step_actors": steps,
            "pool_threads": pool["threads"],
            "queued_turns": pool["queued"],
            "pooled_actors": pool["live"],
        }


def as_id(value: object, what: str) -> uuid.UUID:
    """An id given as a UUID or its text; ``InvalidInput`` for anything else."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"not a {what} id: {str(value)[:80]!r}") from None


def _tell(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        log.debug("dropped %s: its actor has stopped", type(message).__name__)


def _as_command(message: Any) -> tuple[CommandType, dict[str, Any]]:
    """An engine request as the durable command that asks the same."""
    if isinstance(message, m.AnswerApproval):
        kind = CommandType.APPROVE if message.approved else CommandType.DENY
        args: dict[str, Any] = {
            "approval_id": str(message.approval_id),
            "by": message.by,
            "note": message.note,
        }
        if message.raise_limit:
            args["raise_limit"] = dict(message.raise_limit)
        return kind, args
    if isinstance(message, m.Regenerate):
        return CommandType.REGENERATE, {"reason": message.reason, "by": message.by}
    kinds = {
        m.Start: CommandType.START,
        m.Pause: CommandType.PAUSE,
        m.Resume: CommandType.RESUME,
        m.Stop: CommandType.STOP,
    }
    return kinds[type(message)], {"by": getattr(message, "by", None)}


def _target(message: Any) -> str:
    return {
        m.Start: "planning",
        m.Pause: "paused",
        m.Resume: "active",
        m.Stop: "cancelled",
    }.get(type(message), type(message).__name__.lower())
