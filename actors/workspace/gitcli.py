"""Running git (and gh): argv lists, a deadline that kills the process group, bounded output.

Every call gets its own session (``start_new_session=True``) so a timeout kills git and
whatever it started (hooks, filters, ssh) together. stdout and stderr are read apart,
without blocking, in the calling thread: stdout is parsed, so it is kept from its start
(up to a limit); stderr only supplies the reason of a failure.

The environment is the caller's minus the variables that would point git at another
repository (``git rev-parse --local-env-vars``: ``GIT_DIR``, ``GIT_INDEX_FILE``, ...),
plus no prompt, no pager, no editor and English messages. Engine commits carry a fixed
identity, so a machine without ``user.name`` works and the history says who made them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from .errors import GitError

#: each git call's deadline unless the caller gives another
GIT_TIMEOUT_S = 120.0
#: merge-tree --write-tree (merging without a working tree) came in git 2.38
MIN_GIT_VERSION = (2, 38)
#: stdout beyond this is an error for a call whose output is parsed
MAX_STDOUT_BYTES = 64 * 1024 * 1024
MAX_STDERR_BYTES = 64 * 1024
#: once the command has exited, how long a descendant may keep its pipes open
LINGER_S = 0.5
_CHUNK = 64 * 1024

ENGINE_NAME = "directorate"
ENGINE_EMAIL = "directorate@localhost"
_IDENTITY = {
    "GIT_AUTHOR_NAME": ENGINE_NAME,
    "GIT_AUTHOR_EMAIL": ENGINE_EMAIL,
    "GIT_COMMITTER_NAME": ENGINE_NAME,
    "GIT_COMMITTER_EMAIL": ENGINE_EMAIL,
}
# Output to parse, whatever the user's configuration says.
_ALWAYS = ("-c", "color.ui=false", "-c", "core.quotePath=false")
# On the engine's own branches and worktrees the user's hooks do not run (a pre-commit
# hook could refuse, prompt or rewrite the agent's work after it was judged), nothing
# asks for a signing passphrase, and no fsmonitor daemon is left behind per worktree.
# The user's own branch and the push keep the user's configuration (see delivery).
_ENGINE = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "commit.gpgSign=false",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "merge.verifySignatures=false",
)


@attrs.frozen(kw_only=True)
class Output:
    """How a command ended."""

    returncode: int | None  #: None when it timed out
    stdout: bytes  #: from its start, at most the limit
    stderr: str  #: from its start, at most MAX_STDERR_BYTES, decoded
    cut: bool = False  #: stdout reached the limit (and the command was stopped, if asked)
    timed_out: bool = False


class _Head:
    """The first ``limit`` bytes of a stream."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - len(self.buffer)
        if room > 0:
            self.buffer += chunk[:room]

    @property
    def full(self) -> bool:
        return self.total > self.limit


def run_command(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    stdin: bytes | None = None,
    max_stdout: int = MAX_STDOUT_BYTES,
    stop_at_limit: bool = False,
) -> Output:
    """Run ``argv`` (never through a shell) until it ends or ``timeout_s`` passes.

    Raises ``OSError`` when it cannot start (missing executable, missing ``cwd``); does
    not raise for the command's own failures. ``stop_at_limit`` kills the command once
    stdout passes ``max_stdout`` (a diff that is cut anyway need not be computed).
    """
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    out, err = _Head(max_stdout), _Head(MAX_STDERR_BYTES)
    timed_out = False
    try:
        timed_out = _pump(proc, out, err, stdin, time.monotonic() + timeout_s, stop_at_limit)
    finally:
        # Nothing is left behind: kill the group (a no-op once it is empty), then reap.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
    return Output(
        returncode=None if timed_out else proc.returncode,
        stdout=bytes(out.buffer),
        stderr=bytes(err.buffer).decode("utf-8", errors="replace"),
        cut=out.full,
        timed_out=timed_out,
    )


def _pump(
    proc: subprocess.Popen[bytes],
    out: _Head,
    err: _Head,
    stdin: bytes | None,
    deadline: float,
    stop_at_limit: bool,
) -> bool:
    """Feed stdin, collect stdout and stderr until both close; True if the deadline passed."""
    assert proc.stdout is not None and proc.stderr is not None
    heads = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    sel = selectors.DefaultSelector()
    for fd in heads:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    pending = memoryview(stdin or b"")
    if proc.stdin is not None:
        if pending:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
    exited_at: float | None = None
    try:
        while any(fd in sel.get_map() for fd in heads):
            now = time.monotonic()
            if now >= deadline:
                return True
            if stop_at_limit and out.full:
                return False
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > LINGER_S:
                break  # git is done; a descendant of it holds the pipe: stop listening
            for key, _ in sel.select(min(deadline - now, 0.2)):
                if key.fd in heads:
                    try:
                        chunk = os.read(key.fd, _CHUNK)
                    except BlockingIOError:
                        continue
                    if chunk:
                        heads[key.fd].add(chunk)
                    else:
                        sel.unregister(key.fd)
                else:
                    pending = _write(proc, sel, pending)
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:  # it closed its output but kept running
            return True
        return False
    finally:
        sel.close()


def _write(
    proc: subprocess.Popen[bytes], sel: selectors.BaseSelector, pending: memoryview
) -> memoryview:
    assert proc.stdin is not None
    try:
        pending = pending[os.write(proc.stdin.fileno(), pending[:_CHUNK]) :]
    except BlockingIOError:
        return pending
    except OSError:  # it stopped reading (EPIPE): it has what it wanted
        pending = pending[:0]
    if not pending:
        sel.unregister(proc.stdin.fileno())
        proc.stdin.close()
    return pending


def first_reason(stderr: str) -> str:
    """The line of git's stderr that says why: the first ``fatal:``/``error:`` line,
    else the first non-empty one; its prefix removed."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        for prefix in ("fatal: ", "error: "):
            if line.startswith(prefix):
                return line[len(prefix) :]
    return lines[0] if lines else "no message"


def parse_version(text: str) -> tuple[int, int, int]:
    """``git version 2.39.5`` (or ``2.39.0.windows.1``, ``2.39.5 (Apple Git-154)``)."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        raise GitError(f"cannot read git's version from {text.strip()!r}")
    return int(match[1]), int(match[2]), int(match[3] or 0)


def check_version(text: str) -> None:
    """Raise unless ``git version``'s output says 2.38 or newer."""
    found = parse_version(text)
    if found[:2] < MIN_GIT_VERSION:
        need = ".".join(map(str, MIN_GIT_VERSION))
        raise GitError(
            f"git {need} or newer is needed (for merge-tree --write-tree); "
            f"found {'.'.join(map(str, found))}"
        )


@functools.cache
def _local_variables() -> frozenset[str]:
    """The variables that tie git to one repository, once per process (after the
    version check, so an old or missing git is reported first)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        version = run_command(["git", "version"], cwd=Path("/"), env=env, timeout_s=30)
        check_version(version.stdout.decode(errors="replace"))
        local = run_command(
            ["git", "rev-parse", "--local-env-vars"], cwd=Path("/"), env=env, timeout_s=30
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed (no 'git' on PATH)") from exc
    except OSError as exc:
        raise GitError(f"cannot run git: {exc.strerror or exc}") from exc
    return frozenset(local.stdout.decode().split())


def environment(*, read_only: bool, identity: bool) -> dict[str, str]:
    """The environment of one git call (see the module docstring)."""
    local = _local_variables()
    env = {
        name: value
        for name, value in os.environ.items()
        # GIT_CONFIG_COUNT is local; its KEY_n/VALUE_n go with it.
        if name not in local and not name.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        PAGER="cat",
        GIT_EDITOR="true",
        GIT_SEQUENCE_EDITOR="true",
        GIT_MERGE_AUTOEDIT="no",
        LC_ALL="C",
    )
    if read_only:
        # No optional index refresh: a read never takes index.lock from under an agent.
        env["GIT_OPTIONAL_LOCKS"] = "0"
    if identity:
        env.update(_IDENTITY)
    return env


def git(
    operation: str,
    cwd: Path,
    *args: str,
    read_only: bool = False,
    engine: bool = True,
    identity: bool = False,
    ok: Sequence[int] = (0,),
    stdin: bytes | None = None,
    timeout_s: float = GIT_TIMEOUT_S,
    max_stdout: int = MAX_STDOUT_BYTES,
    stop_at_limit: bool = False,
) -> Output:
    """Run ``git -C cwd args`` and return its output; raise :class:`GitError` naming
    ``operation`` when it cannot start, times out, exits outside ``ok`` or says more
    than ``max_stdout`` (unless ``stop_at_limit``: then the output is cut, not an error).

    ``engine`` applies the engine's configuration (no hooks, no signing); ``identity``
    makes commits as directorate; ``read_only`` sets ``GIT_OPTIONAL_LOCKS=0``.
    """
    argv = ["git", "-C", str(cwd), *_ALWAYS, *(_ENGINE if engine else ()), *args]
    command = _subcommand(args)
    try:
        done = run_command(
            argv,
            cwd=cwd,
            env=environment(read_only=read_only, identity=identity),
            timeout_s=timeout_s,
            stdin=stdin,
            max_stdout=max_stdout,
            stop_at_limit=stop_at_limit,
        )
    except FileNotFoundError as exc:
        if not cwd.is_dir():
            raise GitError(f"{operation}: no such directory: {cwd}") from exc
        raise GitError(f"{operation}: git is not installed (no 'git' on PATH)") from exc
    except OSError as exc:
        raise GitError(f"{operation}: cannot run git in {str(cwd)!r}: {exc.strerror}") from exc
    if done.timed_out:
        raise GitError(
            f"{operation}: git {command} timed out after {timeout_s:g} s (process group killed)"
        )
    if done.cut and stop_at_limit:
        return done
    if done.cut:
        raise GitError(f"{operation}: git {command} said more than {max_stdout} bytes")
    if done.returncode not in ok:
        raise GitError(f"{operation}: git {command} failed: {first_reason(done.stderr)}")
    return done


def _subcommand(args: Sequence[str]) -> str:
    """The git command of ``args``, past any leading ``-c name=value``."""
    i = 0
    while i < len(args) and args[i] == "-c":
        i += 2
    return args[i] if i < len(args) else "git"


def text(output: Output) -> str:
    """stdout as one stripped line of text (a sha, a ref name, a path)."""
    return output.stdout.decode("utf-8", errors="surrogateescape").strip()


def nul_fields(output: Output) -> list[str]:
    """stdout of a ``-z`` command as its fields (names git could not give as UTF-8 keep
    their bytes as surrogates, as ``os`` functions expect)."""
    data = output.stdout.removesuffix(b"\0")
    return [f.decode("utf-8", errors="surrogateescape") for f in data.split(b"\0")] if data else []
