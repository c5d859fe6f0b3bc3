"""What changed in a working copy, according to git (argv lists, with timeouts)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .process import clean

GIT_TIMEOUT_S = 30.0
#: the empty tree, to diff against when the repository has no commit yet (SHA-1 repositories)
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def _git(path: Path, *args: str) -> bytes | None:
    """git's stdout, or None if git is missing, fails or takes too long."""
    # Read-only: no optional index lock, so an agent working in the same copy is not
    # disturbed; no pager, no prompts.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(
            ["git", "-C", str(path), *args],
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _names(out: bytes | None) -> list[str]:
    return [clean(n) for n in (out or b"").split(b"\0") if n]


def _base(path: Path, base: str | None) -> str | None:
    """``base`` (or HEAD) if it names a commit, else HEAD, else the empty tree; None if
    ``path`` is not in a git working copy."""
    if _git(path, "rev-parse", "--is-inside-work-tree") is None:
        return None
    for candidate in (base, "HEAD"):
        if not candidate or candidate.startswith("-"):  # not an option in disguise
            continue
        if _git(path, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"):
            return candidate
    return EMPTY_TREE


def git_changed_files(path: str | Path | None, base: str | None) -> list[str]:
    """Files changed in the working copy at ``path`` since ``base`` (HEAD when None):
    committed since, staged, unstaged, and untracked files that are not ignored.

    Sorted, unique, relative to ``path``; ``[]`` when ``path`` is not in a git working
    copy or git is missing. A ``base`` that is not a commit falls back to HEAD.
    """
    if path is None:
        return []
    repo = Path(path)
    against = _base(repo, base)
    if against is None:
        return []
    # The working tree against ``base`` covers commits since it, staged and unstaged changes.
    changed = _names(_git(repo, "diff", "--name-only", "-z", "--no-renames", "--relative", against))
    untracked = _names(_git(repo, "ls-files", "-z", "--others", "--exclude-standard"))
    return sorted(set(changed) | set(untracked))


def git_changes_since(path: str | Path | None, base: str | None) -> list[str] | None:
    """Like :func:`git_changed_files`, but None when it cannot be told: no ``base``,
    a ``base`` that is not a commit, not a git working copy, or git failing. An
    empty list is a known empty diff (what "the agent changed nothing" rests on)."""
    if path is None or not base or base.startswith("-"):
        return None
    repo = Path(path)
    if _git(repo, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}") is None:
        return None
    changed = _git(repo, "diff", "--name-only", "-z", "--no-renames", "--relative", base)
    untracked = _git(repo, "ls-files", "-z", "--others", "--exclude-standard")
    if changed is None or untracked is None:
        return None
    return sorted(set(_names(changed)) | set(_names(untracked)))


def git_diff(path: Path, base: str | None, max_chars: int) -> str:
    """The diff since ``base`` (HEAD when None), untracked files shown as new, at most
    ``max_chars`` characters (with a note of what was cut); "" when not a repository."""
    against = _base(path, base)
    if against is None:
        return ""
    parts = [clean(_git(path, "diff", "--no-color", "--no-ext-diff", "--relative", against) or b"")]
    for name in _names(_git(path, "ls-files", "-z", "--others", "--exclude-standard")):
        if sum(map(len, parts)) >= max_chars:
            break
        try:
            with (path / name).open("rb") as f:
                head = f.read(max_chars)
        except OSError:
            continue
        body = "(binary file)" if b"\0" in head else clean(head)
        parts.append(f"--- /dev/null\n+++ b/{name} (new, untracked)\n{body}\n")
    text = "".join(parts)
    if len(text) > max_chars:
        text = text[:max_chars] + f"\n[... diff cut at {max_chars} characters ...]\n"
    return text
