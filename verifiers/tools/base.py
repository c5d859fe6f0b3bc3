"""What every agent kind has in common: how it is run, and what its output says.

A *kind* (``[agent] kind``, ``[verifiers.llm] kind``) knows one command-line tool:
the argv of a non-interactive run (``invocation``), and how to read what that run
printed (``read``). Both are pure functions of their inputs, so each kind is tested
on the real tool's recorded outputs (tests/agents/recorded) without running it.

The runner (``directorate.actors.runners``) and the judge (``verifiers.llm``) do the
running: a clean environment, a supervisor that kills every descendant, bounded
output. A kind adds no shell, and nothing of the user's or the task's text goes
into an argv except as one argument of its own (the model name, a session id that
``checked_session_id`` has checked, a file path of ours).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import attrs

from .prices import PriceTable


class Purpose(enum.StrEnum):
    """What a run is for: it decides the permissions a kind asks its tool for."""

    EDIT = "edit"
    """A step's work: edit files in its worktree."""
    PLAN = "plan"
    """Planning: read the repository, write the plan file inside it."""
    JUDGE = "judge"
    """A verdict: read the prompt, answer; no edits, no session kept."""


@attrs.frozen(kw_only=True)
class RunSettings:
    """What one run of a tool is asked to do, beside its instructions."""

    purpose: Purpose = Purpose.EDIT
    executable: tuple[str, ...] = ()
    """The tool's command (``[agent] command``); empty: the kind's own binary name."""
    model: str | None = None
    extra_args: tuple[str, ...] = ()
    """Passed through as written, after the kind's own arguments."""
    resume_session: str | None = None
    """Go on with this session of the tool (a rework attempt), where it can."""
    keep_session: bool = True
    """False: ask the tool not to persist a transcript (no resume will follow)."""
    budget_usd: float | None = None
    """The directive's dollars left, for tools that can stop themselves at a budget."""


@attrs.frozen(kw_only=True)
class Invocation:
    """How to start one run: its argv, and whether the instructions go on stdin
    (else the argv names the instructions file the runner wrote)."""

    argv: tuple[str, ...]
    stdin: bool = True
    env: Mapping[str, str] = attrs.field(factory=dict)
    """Variables the kind sets for its tool (they never override the directive's env)."""


@attrs.frozen(kw_only=True)
class ToolReport:
    """What a run's output says, read by its kind. Each figure the tool did not give
    (or gave unusably: then its ``*_note`` says why) is None."""

    result: str | None = None
    """The tool's answer (a step's summary, the judge's verdict text)."""
    failure: str | None = None
    """The tool's own reason when it says the run failed, whatever its exit status."""
    unavailable: str | None = None
    """The tool could not reach its model (not logged in, key refused, network): an
    infrastructure failure, not bad work. Quotes the tool's message."""
    cost_usd: float | None = None
    cost_note: str | None = None
    cost_estimated: bool = False
    """The cost was priced from tokens by the price table, not reported by the tool."""
    tokens: int | None = None
    tokens_note: str | None = None
    turns: int | None = None
    turns_note: str | None = None
    model: str | None = None
    session_id: str | None = None
    denials: int = 0
    """Tool uses its permissions refused."""


class AgentKind(Protocol):
    """One command-line tool."""

    name: str
    binary: str
    """Its command when ``[agent] command`` does not name one."""
    resumes: bool
    """It can go on with an earlier session (``RunSettings.resume_session``)."""

    def invocation(
        self, settings: RunSettings, instructions_file: Path, workdir: Path | None
    ) -> Invocation: ...

    def read(
        self,
        stdout: str,
        stderr: str,
        exit_code: int | None,
        settings: RunSettings,
        prices: PriceTable,
    ) -> ToolReport:
        """What the run's output says (``stdout`` and ``stderr`` may be tails)."""
        ...

    def session_files(
        self, env: Mapping[str, str], workdir: Path, session_ids: Sequence[str]
    ) -> list[Path]:
        """The files and folders the tool persisted for these sessions run in
        ``workdir`` (with ``env`` as it ran), to remove with the worktree."""
        ...


_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")


def checked_session_id(value: object) -> str | None:
    """A session id a tool reported, if it is a plain token (it goes into an argv)."""
    if isinstance(value, str) and _SESSION_ID.fullmatch(value):
        return value
    return None


def executable(settings: RunSettings, binary: str) -> tuple[str, ...]:
    return settings.executable or (binary,)


def answer_text(text: object) -> str | None:
    """An answer as kept: NUL bytes out, at most 4,000 characters; None when blank."""
    if isinstance(text, str) and text.strip():
        return text.replace("\x00", "")[:4000]
    return None


def one_line(text: str | None, limit: int = 500) -> str | None:
    """``text`` on one line, cut to ``limit`` characters; None when blank."""
    if not text or not text.strip():
        return None
    return " ".join(text.replace("\x00", "").split())[:limit]


UNREACHABLE = re.compile(
    r"not logged in|please run /login|invalid (x-)?api[ -]?key|api key|unauthori[sz]ed|"
    r"authentication|\b401\b|\b403\b|forbidden|missing environment variable|"
    r"could not resolve|connection refused|connect(ion)? error|network|"
    r"getaddrinfo|econnrefused|enotfound|timed out connecting|quota|billing|credit balance",
    re.IGNORECASE,
)
"""Words of a tool's failure that say it could not reach or use its model."""


def looks_unreachable(message: str | None) -> bool:
    return bool(message) and UNREACHABLE.search(message or "") is not None
