"""``directorate run FILE``: one directive, followed in this process to the end.

Progress comes from ``signals.directive_event``: on a terminal, a table of steps
redrawn in place; otherwise one line per event. Approvals are asked at the
terminal (or answered by ``--auto-approve``). Ctrl-C pauses the directive.
"""

from __future__ import annotations

import argparse
import json
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import attrs
from rich.live import Live

from directorate.persistence import validation as check
from directorate.persistence.errors import DirectorateError, InvalidInput
from directorate.persistence.models import (
    Approval,
    ApprovalType,
    Directive,
    DirectiveStatus,
    Event,
)

from .. import signals
from ..context import EngineConfig
from ..core.escalation import Trip, raised_limit
from ..directive_file import check_local_path, load_directive_file
from ..engine import Engine
from . import screen, views
from .daemon import prefer_own_python
from .outcome import EXIT_FAILED, EXIT_OK, EXIT_WAITING

_NOT_COPIED = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")


def copy_workspace(source: Path) -> Path:
    """A fresh copy of ``source`` in a temporary folder, as a git repository (so the
    changes the agents make show up in ``git status`` and in the verifiers' context)."""
    target = Path(tempfile.mkdtemp(prefix="directorate-")) / source.resolve().name
    shutil.copytree(source, target, ignore=_NOT_COPIED, symlinks=True)
    if not (target / ".git").exists() and shutil.which("git"):
        git = ["git", "-c", "user.name=directorate", "-c", "user.email=directorate@localhost"]
        for step in (
            ["init", "-q"],
            ["add", "-A"],
            ["commit", "-q", "--allow-empty", "--no-verify", "-m", "directorate: copy"],
        ):
            subprocess.run([*git, *step], cwd=target, check=False, capture_output=True)
    return target


def cmd_run(args: argparse.Namespace) -> int:
    prefer_own_python()
    spec = load_directive_file(args.file)
    if spec.agent is None:
        raise InvalidInput(f"{args.file}: agent: missing (`run` needs an [agent] command)")
    check_local_path(args.file, spec)
    if spec.local_path and not args.in_place:
        source = Path(spec.local_path)
        copy = copy_workspace(source)
        print(
            f"working on a copy of {source}:\n  {copy}\n(--in-place works in the original)",
            file=sys.stderr if args.json else sys.stdout,
        )
        spec = attrs.evolve(spec, local_path=str(copy))
    events: queue.Queue[Event] = queue.Queue()

    def on_event(sender: Any, event: Event) -> None:
        events.put(event)

    signals.directive_event.connect(on_event, weak=False)
    # SIGTERM (from `timeout`, CI, systemd) is Ctrl-C: pause, give the lease up, say
    # how to resume. Not the default death, which would leave a step `running` that
    # no engine owns until the lease expires.
    previous_term = signal.signal(signal.SIGTERM, _terminated)
    engine = Engine.start(EngineConfig(dsn=args.dsn, recover=False))
    try:
        directive_id = engine.submit(spec)
        engine.start_directive(directive_id)
        follower = Follower(
            engine,
            directive_id,
            events,
            tty=sys.stdout.isatty() and not args.json,
            as_json=args.json,
        )
        if not args.json:
            print(f"directive {directive_id}: {spec.title}", flush=True)
        try:
            return follower.follow(auto_approve=args.auto_approve, ask=sys.stdin.isatty())
        except KeyboardInterrupt as exc:
            for signum in (signal.SIGINT, signal.SIGTERM):  # the pause must not be interrupted
                signal.signal(signum, signal.SIG_IGN)
            return follower.interrupted(terminated=isinstance(exc, Terminated))
    finally:
        signals.directive_event.disconnect(on_event)
        engine.shutdown()
        signal.signal(signal.SIGTERM, previous_term)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread where Ctrl-C's KeyboardInterrupt would be."""


def _terminated(signum: int, frame: Any) -> None:
    raise Terminated()


class Follower:
    """Shows one directive's progress and answers its approvals until it ends."""

    def __init__(
        self,
        engine: Engine,
        directive_id: uuid.UUID,
        events: queue.Queue[Event],
        *,
        tty: bool,
        as_json: bool = False,
    ) -> None:
        self.engine = engine
        self.reads = engine.db.reads
        self.directive_id = directive_id
        self.events = events
        self.tty = tty
        self.as_json = as_json
        """Events as JSON lines, then one JSON object for the outcome."""
        self.last_seq = 0
        self.recent: list[str] = []
        self.live: Live | None = None
        self.console = screen.console()
        self.answered: set[uuid.UUID] = set()
        self.started = time.monotonic()

    def follow(self, *, auto_approve: bool, ask: bool) -> int:
        while True:
            self._drain(timeout=0.2)
            directive = self.reads.directive(self.directive_id)
            self._draw(directive)
            if directive.status.terminal:
                return self._finish(directive)
            approvals = [
                a
                for a in self.reads.pending_approvals(self.directive_id)
                if a.id not in self.answered
            ]
            for approval in approvals:
                if not self._answer(approval, auto_approve=auto_approve, ask=ask):
                    return self._leave(directive, f"approval {approval.id} is waiting")
            if not approvals and directive.status is DirectiveStatus.PAUSED:
                return self._leave(directive, "the directive is paused")

    def interrupted(self, *, terminated: bool = False) -> int:
        """Ctrl-C, or SIGTERM when ``terminated``: pause the directive (unless it ended)."""
        self._undraw()
        directive = self.reads.directive(self.directive_id)
        if directive.status.terminal:
            return self._finish(directive)
        try:
            self.engine.pause(self.directive_id, by="sigterm" if terminated else "ctrl-c")
        except DirectorateError as exc:
            print(f"directorate: could not pause: {exc}", file=sys.stderr)
        why = "terminated (SIGTERM): paused" if terminated else "interrupted: paused"
        return self._leave(self.reads.directive(self.directive_id), why)

    # ----------------------------------------------------------------- events and display

    def _drain(self, timeout: float) -> None:
        try:
            event = self.events.get(timeout=timeout)
            while True:
                self._show(event)
                event = self.events.get_nowait()
        except queue.Empty:
            pass

    def _show(self, event: Event) -> None:
        if event.directive_id != self.directive_id or event.seq <= self.last_seq:
            return
        self.last_seq = event.seq
        if self.as_json:
            print(views.to_json(event, compact=True), flush=True)
            return
        line = f"{time.monotonic() - self.started:6.1f}s  {views.describe_event(event)}"
        if self.tty:
            self.recent = [*self.recent[-5:], line]
        else:
            print(views.one_line(line), flush=True)

    def _catch_up(self) -> None:
        """Events the bus has not delivered yet: read them from the database."""
        for event in self.reads.events_after(self.directive_id, self.last_seq):
            self._show(event)

    def _draw(self, directive: Directive) -> None:
        if not self.tty:
            return
        chain = self.reads.current_chain(self.directive_id)
        steps = self.reads.steps(chain.id) if chain else []
        tasks = self.reads.tasks_of_directive(self.directive_id)
        if self.live is None:
            self.console = screen.console()
        view = screen.live_view(
            directive,
            steps,
            tasks,
            self.recent,
            time.monotonic() - self.started,
            self.console.width,  # read at every draw: a resized terminal is followed
        )
        if self.live is None:  # drawn in place, again and again, at the terminal's width
            self.live = Live(view, console=self.console, auto_refresh=False)
            self.live.start()
        self.live.update(view, refresh=True)

    def _undraw(self) -> None:
        """Leave the last table on screen; what follows prints below it."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    # ----------------------------------------------------------------- approvals

    def _answer(self, approval: Approval, *, auto_approve: bool, ask: bool) -> bool:
        """Answer one approval; False when it has to wait for a human."""
        # Never answered for a person: a breaker's new limit, and whether the agent
        # can reach its model again (logged in, key set), are theirs to say.
        personal = approval.approval_type in _ASKED_OF_A_PERSON
        limits: dict[str, float] = {}
        if auto_approve and not personal:
            approved, by = True, "auto-approve"
        elif ask:
            self._undraw()
            decision = _prompt(approval)
            if decision is None:
                return False
            approved, limits = decision
            by = "terminal"
        else:
            return False
        self.answered.add(approval.id)
        try:
            if approved:
                self.engine.approve(approval.id, by, None, **limits)
            else:
                self.engine.deny(approval.id, by, None)
        except DirectorateError as exc:  # answered meanwhile, or the directive stopped
            print(f"directorate: {exc}", file=sys.stderr)
        return True

    # ----------------------------------------------------------------- the end

    def _finish(self, directive: Directive) -> int:
        self._catch_up()
        self._draw(directive)
        self._undraw()
        if self.as_json:
            print(json.dumps(self._outcome(directive)), flush=True)
        else:
            for line in self._summary(directive):
                print(line)
        return EXIT_OK if directive.status is DirectiveStatus.COMPLETED else EXIT_FAILED

    def _leave(self, directive: Directive, why: str) -> int:
        self._catch_up()
        self._draw(directive)
        self._undraw()
        if self.as_json:
            outcome = self._outcome(directive)
            outcome["waiting"] = why
            pending = self.reads.pending_approvals(self.directive_id)
            outcome["pending_approvals"] = [str(a.id) for a in pending]
            unreachable = _unreachable(pending)
            if unreachable:
                outcome["agent_unavailable"] = unreachable
            print(json.dumps(outcome), flush=True)
            return EXIT_WAITING
        pending = self.reads.pending_approvals(self.directive_id)
        print(f"\n{why}; the directive {directive.id} is {directive.status}.")
        unreachable = _unreachable(pending)
        if unreachable:  # the tool's own words, and what to do about them
            print(f"The agent could not reach its model: {unreachable}")
            print("Fix that (log in, set the key, check the network), then approve to retry:")
        print("Answer or continue it with a daemon running (`directorate daemon`):")
        for approval in pending:
            print(f"  directorate approve {approval.id}   (or: directorate deny ...)")
        if directive.status is DirectiveStatus.PAUSED:
            print(f"  directorate resume {directive.id}")
        return EXIT_WAITING

    def _outcome(self, directive: Directive) -> dict[str, Any]:
        """The summary's figures, for ``--json``."""
        chain = self.reads.current_chain(self.directive_id)
        steps = self.reads.steps(chain.id) if chain else []
        events = self.reads.events_after(self.directive_id, 0, limit=100_000)
        return {
            "directive_id": str(directive.id),
            "status": str(directive.status),
            "steps": {s.name: str(s.status) for s in steps},
            "rework_cycles": sum(1 for e in events if e.event_type == "step_rework"),
            "evaluations": len(self.reads.evaluations_of_directive(self.directive_id)),
            "total_cost_usd": directive.total_cost_usd,
            "total_tokens": directive.total_tokens,
            "total_agent_turns": directive.total_agent_turns,
            "wall_time_s": round(time.monotonic() - self.started, 3),
            "local_path": directive.local_path,
            "result_branch": directive.result_branch,
            "base_sha": directive.base_sha,
        }

    def _summary(self, directive: Directive) -> list[str]:
        chain = self.reads.current_chain(self.directive_id)
        steps = self.reads.steps(chain.id) if chain else []
        events = self.reads.events_after(self.directive_id, 0, limit=100_000)
        reworks = sum(1 for e in events if e.event_type == "step_rework")
        evaluations = len(self.reads.evaluations_of_directive(self.directive_id))
        passed = sum(1 for s in steps if s.status.finished)
        lines = [
            "",
            f"{directive.status}: {directive.title}",
            f"  steps        {passed} of {len(steps)} passed",
            f"  rework       {reworks} cycle(s)",
            f"  evaluations  {evaluations}",
            f"  cost         ${directive.total_cost_usd:.2f}",
            f"  used         {views.usage_line(directive).removeprefix('used ')}",
            f"  wall time    {time.monotonic() - self.started:.1f}s",
        ]
        failures = [e for e in events if e.event_type == "directive_failed"]
        if failures:
            lines.append(f"  reason       {failures[-1].data.get('reason')}")
        if directive.local_path:
            lines.append(f"  work in      {directive.local_path}")
        lines.extend(views.result_branch_lines(directive, indent="  "))
        return lines


_ASKED_OF_A_PERSON = (ApprovalType.CIRCUIT_BREAKER, ApprovalType.AGENT_UNAVAILABLE)
"""Approvals ``--auto-approve`` leaves to a person."""


def _unreachable(pending: list[Approval]) -> str | None:
    """The tool's message when the directive waits because its agent could not
    reach its model."""
    for approval in pending:
        if approval.approval_type is ApprovalType.AGENT_UNAVAILABLE:
            return str(approval.context.get("message") or approval.description)
    return None


def _prompt(approval: Approval) -> tuple[bool, dict[str, float]] | None:
    """Ask at the terminal: (approved, raised limits), or None to leave it waiting."""
    print(f"\napproval needed ({approval.approval_type}): {approval.description}")
    details = approval.context.get("summary") or approval.context.get("rework_instructions")
    if details:
        print(views.one_line(details, 400))
    while True:
        try:
            answer = input("approve? [y]es / [n]o / [l]eave it waiting: ").strip().lower()
        except EOFError:
            return None
        if answer in ("y", "yes"):
            break
        if answer in ("n", "no"):
            return False, {}
        if answer in ("l", "leave", ""):
            return None
    limits: dict[str, float] = {}
    limit = approval.context.get("limit")
    if approval.approval_type is ApprovalType.CIRCUIT_BREAKER and limit:
        # What the engine raises it to when no figure is given, as of the trip (the
        # engine's own also clears whatever was added since).
        context = approval.context
        trip = Trip(limit=limit, figure=context["figure"], threshold=context["threshold"])
        default = check.number(raised_limit(trip, None, trip.figure))
        raw = input(f"new {limit} (empty: {default}): ").strip()
        if raw:
            try:
                limits[limit] = float(raw.replace(",", ""))
            except ValueError:
                print(f"not a number: {raw!r}; the engine raises it itself")
    return True, limits
