"""Task runners: how agent work is executed (DESIGN §5).

A runner's ``run(task, cancel)`` is called on a pool thread, never on an actor's
own thread, and returns a ``TaskResult``; it must return promptly once ``cancel``
is set.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

from directorate.persistence.errors import RunnerError
from directorate.persistence.models import AgentSpec, Task, TaskKind, TaskStatus
from directorate.verifiers.environment import CleanEnvironment, mask, mask_file, mask_optional
from directorate.verifiers.supervised import Supervised, SupervisedProcess
from directorate.verifiers.tools import (
    DEFAULT_TABLE,
    AgentKind,
    PriceTable,
    Purpose,
    RunSettings,
    ToolReport,
    kind_named,
    parse_prices,
)
from directorate.verifiers.tools.command import report_of

from .usage import budget_text

TAIL_BYTES = 16_384
"""How much of an agent's output the task record keeps (the log file has it all)."""
REPORT_BYTES = 4 * 1024 * 1024
"""How far back from the end of its output an agent's JSON report line is looked for."""


@attrs.frozen(kw_only=True)
class WorkCommit:
    """What a step's attempt left on its branch (its worktree, issue 10)."""

    sha: str
    committed: bool
    """The engine made a commit of what the agent left (False: nothing was left)."""
    files: int
    insertions: int
    deletions: int
    """Since the step's branch left the result branch."""
    conflict_markers: tuple[str, ...] = ()
    """Files that still hold conflict markers: the step cannot be merged."""


@attrs.frozen(kw_only=True)
class TaskResult:
    """What one execution of agent work came to."""

    status: TaskStatus
    exit_code: int | None = None
    cost_usd: float | None = None
    """What the agent reported spending (its last JSON line); None: not reported."""
    cost_note: str | None = None
    """Why a reported cost was not usable (recorded as unknown, with a warning)."""
    tokens: int | None = None
    """Tokens it reported using (``read_tokens``); None: not reported or not usable."""
    tokens_note: str | None = None
    """Why a reported token count was not usable (unknown, with a warning)."""
    turns: int | None = None
    """Agent turns it reported taking (``read_turns``); None: not reported or not usable."""
    turns_note: str | None = None
    """Why a reported turn count was not usable (unknown, with a warning)."""
    summary: str | None = None
    output_tail: str = ""
    error: str | None = None
    """Why the runner itself failed (the agent could not be started, a callable raised)."""
    started_at: float = 0.0
    finished_at: float = 0.0
    commit: WorkCommit | None = None
    """The step's branch after the attempt (steps with a worktree only)."""
    session_id: str | None = None
    """The agent's own session id (``session_id`` in its report), to resume it."""
    unavailable: str | None = None
    """The agent could not reach its model (not logged in, key refused, network
    down): an infrastructure failure, not bad work (issue 15 point 4). The tool's
    own message; the attempt is FAILED."""
    denials: int = 0
    """Tool uses the agent's permissions refused."""


class TaskRunner(Protocol):
    def run(self, task: Task, cancel: threading.Event) -> TaskResult: ...


ProcessStarted = Callable[[SupervisedProcess], None]
"""Told which processes run a task's agent, as soon as they run."""


@runtime_checkable
class ProcessRunner(TaskRunner, Protocol):
    """A runner whose agent is an operating-system process. The engine calls
    ``run_process`` instead of ``run`` and records what ``started`` is told in the
    task's row, so that an engine recovering the task after a crash can make sure
    that process is gone (DESIGN §18). ``started`` does not block on the database."""

    kill_grace_s: float
    """How long its agent has between SIGTERM and SIGKILL."""

    def run_process(
        self, task: Task, cancel: threading.Event, started: ProcessStarted
    ) -> TaskResult: ...


DEFAULT_KILL_GRACE_S = 5.0
"""An agent's time between SIGTERM and SIGKILL, unless its runner says otherwise."""


def kill_grace_for(agent: AgentSpec | None, default: TaskRunner | None) -> float:
    """How long a directive's agent gets between SIGTERM and SIGKILL (a recovering
    engine gives a dead engine's agent as long)."""
    try:
        runner = runner_for(agent, default)
    except RunnerError:
        return DEFAULT_KILL_GRACE_S
    return runner.kill_grace_s if isinstance(runner, ProcessRunner) else DEFAULT_KILL_GRACE_S


def runner_for(agent: AgentSpec | None, default: TaskRunner | None) -> TaskRunner:
    """The runner for a directive: its own agent (a tool kind or a command), else the
    engine's runner."""
    if agent is not None:
        return CommandRunner(
            agent.command,
            kind=kind_named(agent.kind),
            model=agent.model,
            extra_args=agent.extra_args,
            prices=DEFAULT_TABLE.with_overrides(parse_prices(agent.prices, "agent.prices")),
            timeout_s=agent.timeout_s,
            env=agent.env,
            pass_env=agent.pass_env,
        )
    if default is None:
        raise RunnerError("no task runner: set EngineConfig.runner or the directive's [agent]")
    return default


class CallableRunner:
    """Runs a Python callable ``fn(task, cancel)`` as the agent (embedding, tests).

    The callable may return a ``TaskResult``, a mapping with the keys of the JSON
    result line (``cost_usd``, ``summary``, ``success``, and ``usage``/``tokens`` and
    ``num_turns``/``turns`` as ``actors.usage`` reads them), a string (the summary)
    or None (success). An exception is a failed task carrying the error.
    """

    def __init__(self, fn: Callable[[Task, threading.Event], Any]) -> None:
        self.fn = fn

    def run(self, task: Task, cancel: threading.Event) -> TaskResult:
        started = time.time()
        try:
            value = self.fn(task, cancel)
        except Exception as exc:
            return TaskResult(
                status=TaskStatus.FAILED,
                error=repr(exc),
                output_tail=repr(exc),
                started_at=started,
                finished_at=time.time(),
            )
        if isinstance(value, TaskResult):
            return value
        report = _report_from(value)
        read = report_of(report)
        ok = read.failure is None
        if cancel.is_set():  # what it spent before it stopped still counts
            status = TaskStatus.CANCELLED
        else:
            status = TaskStatus.SUCCEEDED if ok else TaskStatus.FAILED
        return TaskResult(
            status=status,
            exit_code=0 if ok else 1,
            **_figures(read),
            summary=read.result or (read.failure if not ok else None),
            unavailable=read.unavailable,
            error=None if ok else read.failure,
            output_tail=read.result or "",
            started_at=started,
            finished_at=time.time(),
        )


class CommandRunner:
    """Runs an agent's command-line tool: a known kind (``claude-code``, ``codex``...)
    or any command line (kind ``command``, for example ``claude -p --output-format
    json``), as ``directorate.verifiers.tools`` builds its argv and reads its output.

    The task's instructions go on stdin, or in a file the argv names (never into an
    argument or a shell line); the task's identity goes in ``DIRECTORATE_*``
    environment variables. The agent's environment is a clean one
    (``verifiers.environment``): the base variables (``PATH``, ``HOME``, locale...),
    the kind's own settings, the engine's variables named in ``pass_env``, ``env``
    and the task variables; never the engine's DSN or other secrets. Values of
    passed variables with secret-looking names are masked (``***``) in the log files
    and in the result. The agent runs under a supervisor of its own
    (``verifiers.supervisor``), which outlives every process the agent starts,
    those that leave its process group included: a timeout or a cancel ends the
    agent (SIGTERM, ``kill_grace_s``, SIGKILL) and all of them, and when the agent
    exits by itself what it left is killed. Its output goes to the task's log file
    (stdout) and ``<log>.stderr``; the record keeps a tail.
    """

    def __init__(
        self,
        argv: Sequence[str] = (),
        *,
        kind: AgentKind | None = None,
        model: str | None = None,
        extra_args: Sequence[str] = (),
        prices: PriceTable = DEFAULT_TABLE,
        timeout_s: float = 3600.0,
        env: Mapping[str, str] | None = None,
        pass_env: Sequence[str] = (),
        kill_grace_s: float = DEFAULT_KILL_GRACE_S,
        poll_interval_s: float = 0.05,
    ) -> None:
        self.kind = kind or kind_named("command")
        if isinstance(argv, str) or not all(isinstance(a, str) for a in argv):
            raise RunnerError("the agent command must be a list of strings")
        if not argv and self.kind.name == "command":
            raise RunnerError("the agent command must be a non-empty list of strings")
        if timeout_s <= 0:
            raise RunnerError("timeout_s must be positive")
        self.argv = list(argv)
        self.model = model
        self.extra_args = tuple(extra_args)
        self.prices = prices
        self.timeout_s = timeout_s
        self.env = dict(env or {})
        self.pass_env = list(pass_env)
        try:
            self.environment = CleanEnvironment(pass_env=self.pass_env, env=self.env)
        except ValueError as exc:
            raise RunnerError(f"agent environment: {exc}") from None
        self.kill_grace_s = kill_grace_s
        self.poll_interval_s = poll_interval_s

    def settings(self, task: Task) -> RunSettings:
        """What this task's run asks of the tool."""
        planning = task.kind is TaskKind.PLANNING
        return RunSettings(
            purpose=Purpose.PLAN if planning else Purpose.EDIT,
            executable=tuple(self.argv),
            model=self.model,
            extra_args=self.extra_args,
            resume_session=task.resume_session if self.kind.resumes else None,
            # No one resumes a planning session: the tool need not keep it.
            keep_session=not planning,
            budget_usd=task.budget_usd,
        )

    def run(self, task: Task, cancel: threading.Event) -> TaskResult:
        return self.run_process(task, cancel, lambda process: None)

    def run_process(
        self, task: Task, cancel: threading.Event, started: ProcessStarted
    ) -> TaskResult:
        """``run``, telling ``started`` which processes run the agent as soon as it runs."""
        started_at = time.time()
        stdout_path, stderr_path = self._log_paths(task)
        settings = self.settings(task)
        workdir = Path(task.workdir) if task.workdir else None
        with _instructions_file(task.instructions) as instructions:
            invocation = self.kind.invocation(settings, instructions, workdir)
            argv = [*invocation.argv, *task.agent_args]
            environment = self._environment(task, invocation.env)
            secrets = self.environment.secrets(environment)
            try:
                with (
                    (instructions.open("rb") if invocation.stdin else open(os.devnull, "rb"))
                    as stdin,
                    stdout_path.open("wb") as stdout,
                    stderr_path.open("wb") as stderr,
                ):
                    proc = Supervised.start(
                        argv,
                        cwd=task.workdir or None,
                        env=environment,
                        grace_s=self.kill_grace_s,
                        stdin=stdin,
                        stdout=stdout,
                        stderr=stderr,
                    )
            except OSError as exc:
                message = mask(f"could not start the agent {argv[0]!r}: {exc}", secrets)
                return TaskResult(
                    status=TaskStatus.FAILED,
                    error=message,
                    output_tail=message,
                    started_at=started_at,
                    finished_at=time.time(),
                )
            try:
                started(proc.process)
                status = self._wait(proc, cancel, deadline=time.monotonic() + self.timeout_s)
            finally:
                if proc.poll() is None:  # the callback or the wait raised: leave nothing behind
                    proc.stop_and_wait(self.kill_grace_s)
                proc.close()
        if secrets:
            for path in (stdout_path, stderr_path):
                mask_file(path, secrets)
        out_tail = _tail(stdout_path)
        err_tail = _tail(stderr_path)
        # The report may be long (an agent's whole answer): look further back.
        report = self.kind.read(
            _tail(stdout_path, REPORT_BYTES),
            _tail(stderr_path, REPORT_BYTES),
            proc.returncode,
            settings,
            self.prices,
        )
        failure = report.failure
        if status is None:  # exited by itself: failed by its status, or by its own word
            ok = proc.returncode == 0 and failure is None
            status = TaskStatus.SUCCEEDED if ok else TaskStatus.FAILED
        if report.denials:  # said where a person reads the attempt: its output tail
            refused = f"{report.denials} tool use(s) refused by the agent's permissions"
            err_tail = f"{err_tail}\n{refused}".strip()
        output = out_tail if not err_tail else f"{out_tail}\n--- stderr ---\n{err_tail}"
        failed = status is TaskStatus.FAILED
        return TaskResult(
            status=status,
            exit_code=proc.returncode,
            **_figures(report),
            # The tool's own reason when its report has no answer (Claude's max turns).
            summary=mask_optional(report.result or (failure if failed else None), secrets),
            unavailable=mask_optional(report.unavailable, secrets) if failed else None,
            output_tail=mask(output, secrets)[-TAIL_BYTES:],
            error=f"timed out after {self.timeout_s:g} s"
            if status is TaskStatus.TIMED_OUT
            else mask_optional(failure, secrets)
            if failed
            else None,
            started_at=started_at,
            finished_at=time.time(),
        )

    def session_files(self, workdir: Path, session_ids: Sequence[str]) -> list[Path]:
        """What the tool persisted for these sessions in ``workdir``, as this runner's
        agents see their home (to remove with the worktree)."""
        return self.kind.session_files(self._environment_base(), workdir, session_ids)

    def _wait(
        self, proc: Supervised, cancel: threading.Event, deadline: float
    ) -> TaskStatus | None:
        """None when the agent exited by itself; else why it was stopped. Either way,
        once this returns, no process the agent started is left."""
        # Woken at once when the agent ends; the cancel is looked at between waits.
        while not proc.wait_for_end(min(self.poll_interval_s, deadline - time.monotonic())):
            if cancel.is_set():
                proc.stop_and_wait(self.kill_grace_s)
                return TaskStatus.CANCELLED
            if time.monotonic() >= deadline:
                proc.stop_and_wait(self.kill_grace_s)
                return TaskStatus.TIMED_OUT
        return None

    def _log_paths(self, task: Task) -> tuple[Path, Path]:
        if task.log_path:
            log = Path(task.log_path)
        else:
            log = Path(tempfile.gettempdir()) / "directorate" / f"{task.id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        return log, log.with_name(log.name + ".stderr")

    def _environment_base(self) -> dict[str, str]:
        return self.environment.build()

    def _environment(self, task: Task, kind_env: Mapping[str, str]) -> dict[str, str]:
        environment = self.environment.build()
        for name, value in kind_env.items():  # the kind's defaults: the directive's win
            environment.setdefault(name, value)
        environment.update(
            {
                "DIRECTORATE_DIRECTIVE_ID": str(task.directive_id),
                "DIRECTORATE_STEP_ID": str(task.step_id or ""),
                "DIRECTORATE_TASK_ID": str(task.id),
                "DIRECTORATE_TASK_KIND": str(task.kind),
                "DIRECTORATE_ATTEMPT": str(task.attempt),
                "DIRECTORATE_PLAN_FILE": task.plan_file or "",
                "DIRECTORATE_BUDGET_USD": budget_text(task.budget_usd),
            }
        )
        return environment


@contextlib.contextmanager
def _instructions_file(text: str) -> Iterator[Path]:
    """The instructions in a private temporary file, removed after the run: the agent
    reads it as its stdin (a pipe could deadlock an agent that prints a lot before it
    reads, and a file needs no feeder thread) or by its name (Aider's --message-file)."""
    with tempfile.TemporaryDirectory(prefix="directorate-task-") as folder:
        path = Path(folder) / "instructions.md"
        path.write_bytes(text.encode("utf-8", errors="replace"))
        yield path


def _tail(path: Path, limit: int = TAIL_BYTES) -> str:
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - limit))
            data = file.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace").replace("\x00", "").strip()


def _figures(report: ToolReport) -> dict[str, Any]:
    """A tool report's figures as ``TaskResult`` fields."""
    return {
        "cost_usd": report.cost_usd,
        "cost_note": report.cost_note,
        "tokens": report.tokens,
        "tokens_note": report.tokens_note,
        "turns": report.turns,
        "turns_note": report.turns_note,
        "session_id": report.session_id,
        "denials": report.denials,
    }


def _report_from(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        return {"summary": value}
    return {}
