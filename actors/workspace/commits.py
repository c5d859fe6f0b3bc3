"""Committing what an agent left, discarding what a killed attempt left, and diffs."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from .errors import GitError
from .gitcli import GIT_TIMEOUT_S, git, nul_fields, text
from .locking import repository_lock
from .records import DiffStat, Discarded, Repository, StepCommit
from .repository import check_branch, commit_sha, worktree_repository

#: a default bound of :func:`diff`, in characters
MAX_DIFF_CHARS = 200_000
#: files scanned for leftover conflict markers after a merge, and how much of each
_MARKER_SCAN_FILES = 1_000
_MARKER_SCAN_BYTES = 1024 * 1024
_START_MARKER = re.compile(rb"^<{7}(?: |$)", re.MULTILINE)
_END_MARKER = re.compile(rb"^>{7}(?: |$)", re.MULTILINE)


def commit_all(
    worktree: Path | str,
    message: str,
    *,
    base: str,
    branch: str | None = None,
    timeout_s: float = GIT_TIMEOUT_S,
) -> StepCommit:
    """Commit everything left uncommitted in ``worktree`` (new, changed and deleted files;
    ignored ones stay out), finishing a merge in progress if there is one; the agent's
    own commits stay as they are. Returns the branch's head and what it changed since
    ``base`` (``git diff --numstat base...head``: since the branch forked from it).

    Nothing left to commit: no new commit, ``committed=False``. With ``branch``, raises
    :class:`GitError` unless that branch is the one checked out (an agent that switched
    branches or stopped mid-rebase would otherwise commit elsewhere).
    """
    folder = Path(worktree)
    repo, gitdir = worktree_repository(folder, "commit_all")
    with repository_lock(repo.common_dir, "commit_all"):
        if branch is not None:
            _require_branch(repo, branch, "commit_all")
        merging = (gitdir / "MERGE_HEAD").exists()
        git("commit_all", repo.toplevel, "add", "--all", timeout_s=timeout_s)
        staged = git(
            "commit_all",
            repo.toplevel,
            "diff",
            "--cached",
            "--quiet",
            "HEAD",
            "--",
            ok=(0, 1),
            timeout_s=timeout_s,
        )
        markers: tuple[str, ...] = ()
        committed = merging or staged.returncode == 1
        if merging:
            markers = _files_with_markers(repo, timeout_s)
            # `git commit` completes the merge (and clears its state), even with no change
            # of its own: the merge itself is what is recorded. The message replaces
            # git's MERGE_MSG.
            git(
                "commit_all",
                repo.toplevel,
                "commit",
                "--quiet",
                "--no-verify",
                "-m",
                message,
                identity=True,
                timeout_s=timeout_s,
            )
        elif committed:
            _commit_index(repo, message, timeout_s)
        head = commit_sha(repo, "HEAD", "commit_all")
    return StepCommit(
        head=head,
        committed=committed,
        completed_merge=merging,
        stat=diff_stat(repo, base, head, timeout_s=timeout_s),
        conflict_markers=markers,
    )


def _commit_index(repo: Repository, message: str, timeout_s: float) -> None:
    """Commit the index on HEAD's branch with plumbing: `git commit` would refresh the
    whole index again first, re-reading every file of a fresh checkout (git cannot trust
    the timestamps of files written in the same second as its index): ~200 ms on 10,000
    files, for nothing, as `add --all` has just done it."""
    parent = commit_sha(repo, "HEAD", "commit_all")
    tree = text(git("commit_all", repo.toplevel, "write-tree", timeout_s=timeout_s))
    made = git(
        "commit_all",
        repo.toplevel,
        "commit-tree",
        tree,
        "-p",
        parent,
        "-m",
        message,
        identity=True,
        timeout_s=timeout_s,
    )
    # Through HEAD, so its branch moves (and both reflogs say so); only from `parent`.
    git(
        "commit_all",
        repo.toplevel,
        "update-ref",
        "-m",
        f"commit: {message.splitlines()[0] if message else ''}",
        "HEAD",
        text(made),
        parent,
        timeout_s=timeout_s,
    )


def _require_branch(repo: Repository, branch: str, operation: str) -> None:
    done = git(
        operation, repo.toplevel, "symbolic-ref", "--quiet", "HEAD", read_only=True, ok=(0, 1)
    )
    current = text(done).removeprefix("refs/heads/") if done.returncode == 0 else None
    if current != check_branch(branch):
        on = f"branch {current}" if current else "a detached HEAD"
        raise GitError(f"{operation}: {repo.toplevel} has {on} checked out, not {branch}")


def _files_with_markers(repo: Repository, timeout_s: float) -> tuple[str, ...]:
    """Files of the merge being completed that still hold a conflict (a line starting
    ``<<<<<<<`` and one starting ``>>>>>>>``): what the agent did not resolve."""
    done = git(
        "commit_all",
        repo.toplevel,
        "diff",
        "--cached",
        "--name-only",
        "-z",
        "--no-renames",
        "--diff-filter=AM",
        "HEAD",
        read_only=True,
        timeout_s=timeout_s,
    )
    found: list[str] = []
    for name in nul_fields(done)[:_MARKER_SCAN_FILES]:
        try:
            with (repo.toplevel / name).open("rb") as f:
                head = f.read(_MARKER_SCAN_BYTES)
        except OSError:  # a symlink to nowhere, a folder (submodule): no markers to see
            continue
        if _START_MARKER.search(head) and _END_MARKER.search(head):
            found.append(name)
    return tuple(found)


def discard_uncommitted(
    worktree: Path | str, *, branch: str | None = None, timeout_s: float = GIT_TIMEOUT_S
) -> Discarded:
    """Put ``worktree`` back at its branch's last commit: abandon a merge, rebase,
    cherry-pick or revert in progress, reset tracked files, remove untracked files and
    folders (ignored ones, such as installed dependencies, stay). With ``branch``, that
    branch is checked out again if the agent had switched away.

    For a worktree no agent is running in (before a new attempt after a killed one): a
    stale ``index.lock`` left by a git the agent had running is removed.
    """
    folder = Path(worktree)
    repo, gitdir = worktree_repository(folder, "discard_uncommitted")
    with repository_lock(repo.common_dir, "discard_uncommitted"):
        with contextlib.suppress(FileNotFoundError):
            (gitdir / "index.lock").unlink()
        aborted = _abort_in_progress(repo, gitdir, timeout_s)
        if branch is not None:
            done = git(
                "discard_uncommitted",
                repo.toplevel,
                "symbolic-ref",
                "--quiet",
                "HEAD",
                read_only=True,
                ok=(0, 1),
            )
            if text(done) != f"refs/heads/{check_branch(branch)}":
                git(
                    "discard_uncommitted",
                    repo.toplevel,
                    "checkout",
                    "--quiet",
                    "--force",
                    branch,
                    "--",
                    timeout_s=timeout_s,
                )
        git(
            "discard_uncommitted",
            repo.toplevel,
            "reset",
            "--quiet",
            "--hard",
            "HEAD",
            timeout_s=timeout_s,
        )
        # -f twice: also a repository the agent cloned or made inside the worktree.
        cleaned = git(
            "discard_uncommitted", repo.toplevel, "clean", "-f", "-f", "-d", timeout_s=timeout_s
        )
        head = commit_sha(repo, "HEAD", "discard_uncommitted")
    removed = tuple(
        line.removeprefix("Removing ")
        for line in cleaned.stdout.decode("utf-8", errors="replace").splitlines()
        if line.startswith("Removing ")
    )
    return Discarded(head=head, removed=removed, aborted=aborted)


def _abort_in_progress(repo: Repository, gitdir: Path, timeout_s: float) -> str | None:
    """Abandon the operation in progress in the worktree, if any; its name."""
    if (gitdir / "rebase-merge").exists() or (gitdir / "rebase-apply" / "rebasing").exists():
        git("discard_uncommitted", repo.toplevel, "rebase", "--abort", timeout_s=timeout_s)
        return "rebase"
    if (gitdir / "rebase-apply").exists():
        git("discard_uncommitted", repo.toplevel, "am", "--abort", timeout_s=timeout_s)
        return "am"
    # `reset --hard` below ends these three (it removes MERGE_HEAD and the sequencer state).
    for name, what in (
        ("MERGE_HEAD", "merge"),
        ("CHERRY_PICK_HEAD", "cherry-pick"),
        ("REVERT_HEAD", "revert"),
    ):
        if (gitdir / name).exists():
            if what != "merge":
                git(
                    "discard_uncommitted",
                    repo.toplevel,
                    what,
                    "--quit",
                    ok=(0, 128),
                    timeout_s=timeout_s,
                )
            return what
    return None


def diff_stat(
    repo: Repository, base: str, head: str, *, timeout_s: float = GIT_TIMEOUT_S
) -> DiffStat:
    """Files changed, insertions and deletions of ``head`` since it forked from ``base``
    (``git diff --numstat base...head``; a rename is one file, a binary file counts as a
    file and in neither line count)."""
    old = commit_sha(repo, base, "diff_stat")
    new = commit_sha(repo, head, "diff_stat")
    done = git(
        "diff_stat",
        repo.toplevel,
        "diff",
        "--numstat",
        "-z",
        "-M",
        "--no-ext-diff",
        "--no-textconv",
        f"{old}...{new}",
        "--",
        read_only=True,
        timeout_s=timeout_s,
    )
    return parse_numstat(done.stdout)


def parse_numstat(out: bytes) -> DiffStat:
    """``git diff --numstat -z``: ``added TAB deleted TAB path NUL``, or for a rename
    ``added TAB deleted TAB NUL old NUL new NUL``; ``-`` counts for a binary file."""
    files = insertions = deletions = 0
    fields = out.split(b"\0")
    i = 0
    while i < len(fields):
        field = fields[i]
        i += 1
        if not field:
            continue
        added, deleted, path = field.split(b"\t", 2)
        if not path:  # a rename or copy: the two names follow
            i += 2
        files += 1
        insertions += int(added) if added != b"-" else 0
        deletions += int(deleted) if deleted != b"-" else 0
    return DiffStat(files=files, insertions=insertions, deletions=deletions)


def diff(
    repo: Repository,
    base: str,
    head: str,
    *,
    max_chars: int = MAX_DIFF_CHARS,
    timeout_s: float = GIT_TIMEOUT_S,
) -> str:
    """The patch of ``head`` since it forked from ``base`` (``git diff base...head``), at
    most ``max_chars`` characters, with a note of the cut."""
    old = commit_sha(repo, base, "diff")
    new = commit_sha(repo, head, "diff")
    done = git(
        "diff",
        repo.toplevel,
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "-M",
        f"{old}...{new}",
        "--",
        read_only=True,
        timeout_s=timeout_s,
        # Bytes bound characters from above; a diff cut anyway need not be finished.
        max_stdout=max_chars * 4,
        stop_at_limit=True,
    )
    patch = done.stdout.decode("utf-8", errors="replace").replace("\x00", "")
    if len(patch) > max_chars or done.cut:
        patch = patch[:max_chars] + f"\n[... diff cut at {max_chars} characters ...]\n"
    return patch
