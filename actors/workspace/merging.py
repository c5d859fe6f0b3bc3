"""Merging a step into the result branch (no worktree), and the result into a step's worktree.

``merge_step`` never checks the result branch out: ``git merge-tree --write-tree``
merges two commits into a tree in the object store, ``git commit-tree`` makes the
merge commit, and ``git update-ref <ref> <new> <old>`` moves the branch only if it is
still where the merge started from. Under the repository lock no other engine
operation can move it; a writer outside it (the user) is detected by that
compare-and-swap and the merge is redone on top of what it wrote, never lost.

A step is always merged with a merge commit, even when a fast-forward was possible:
the result branch's first-parent history then reads one commit per step, in merge
order, each naming its step (``git log --first-parent``), the ``step_merged`` sha is
a commit of its own, and one step is undone with ``git revert -m 1 <sha>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from .errors import GitError
from .gitcli import GIT_TIMEOUT_S, first_reason, git, nul_fields, text
from .locking import repository_lock
from .records import Conflict, ConflictedFile, Hunk, Merged, MergeKind, Repository
from .repository import branch_sha, check_branch, commit_sha, is_ancestor, worktree_repository

#: a conflict quotes at most this many files, and this many lines of each
MAX_CONFLICT_FILES = 20
MAX_CONFLICT_LINES = 200
#: lines of context around each conflicted region
CONTEXT_LINES = 3
#: a file larger than this is not read for hunks
_MAX_CONFLICTED_FILE_BYTES = 4 * 1024 * 1024
#: how often a merge is redone when a writer outside the lock moved the target meanwhile
CAS_ATTEMPTS = 5


def merge_step(
    repo: Repository,
    target_branch: str,
    source_branch: str,
    message: str,
    *,
    timeout_s: float = GIT_TIMEOUT_S,
) -> Merged | Conflict:
    """Merge ``source_branch`` into ``target_branch`` with a merge commit, without a
    worktree. A conflict leaves the target unchanged and returns the conflicting files
    with their hunks (markers included) as git wrote them into the merged tree.
    Already merged: ``Merged(kind=UP_TO_DATE)``, nothing changed."""
    check_branch(target_branch)
    check_branch(source_branch)
    with repository_lock(repo.common_dir, "merge_step"):
        return merge_refs(
            repo, target_branch, source_branch, message, "merge_step", False, timeout_s
        )


def merge_refs(
    repo: Repository,
    target: str,
    source: str,
    message: str,
    operation: str,
    fast_forward: bool,
    timeout_s: float,
) -> Merged | Conflict:
    """The merge of ``merge_step`` (and of a delivery to a branch no one has checked
    out, which fast-forwards when it can). The caller holds the repository lock."""
    for _ in range(CAS_ATTEMPTS):
        old = _branch_or_fail(repo, target, operation)
        new_parent = _branch_or_fail(repo, source, operation)
        if is_ancestor(repo, new_parent, old):
            return Merged(sha=old, kind=MergeKind.UP_TO_DATE)
        if fast_forward and is_ancestor(repo, old, new_parent):
            new, kind = new_parent, MergeKind.FAST_FORWARD
        else:
            merged = merge_tree(
                repo, old, new_parent, operation, timeout_s, labels=(target, source)
            )
            if isinstance(merged, Conflict):
                return merged
            new = text(
                git(
                    operation,
                    repo.toplevel,
                    "commit-tree",
                    merged,
                    "-p",
                    old,
                    "-p",
                    new_parent,
                    "-m",
                    message,
                    identity=True,
                    timeout_s=timeout_s,
                )
            )
            kind = MergeKind.MERGE_COMMIT
        if _compare_and_swap(repo, target, new, old, f"directorate: merge {source}", operation):
            return Merged(sha=new, kind=kind)
    raise GitError(
        f"{operation}: {target} kept moving while merging {source} ({CAS_ATTEMPTS} attempts)"
    )


def _branch_or_fail(repo: Repository, name: str, operation: str) -> str:
    sha = branch_sha(repo, name)
    if sha is None:
        raise GitError(f"{operation}: no branch {name} in {repo.toplevel}")
    return sha


def _compare_and_swap(
    repo: Repository, branch: str, new: str, old: str, reason: str, operation: str
) -> bool:
    """Move ``branch`` from ``old`` to ``new``; False if it was no longer at ``old``."""
    done = git(
        operation,
        repo.toplevel,
        "update-ref",
        "-m",
        reason,
        f"refs/heads/{branch}",
        new,
        old,
        ok=(0, 128),
    )
    if done.returncode == 0:
        return True
    if branch_sha(repo, branch) != old:
        return False
    raise GitError(f"{operation}: git update-ref failed: {first_reason(done.stderr)}")


def merge_tree(
    repo: Repository,
    ours: str,
    theirs: str,
    operation: str,
    timeout_s: float,
    *,
    labels: tuple[str, str] | None = None,
) -> str | Conflict:
    """The merged tree of two commits, or the conflict; writes objects, moves no ref.

    git labels the markers with what it was given, the two shas (given so that what is
    merged is exactly what the compare-and-swap expects); ``labels`` names them in the
    quoted hunks instead, as an agent reads them best."""
    done = git(
        operation,
        repo.toplevel,
        "merge-tree",
        "--write-tree",
        "-z",
        "--name-only",
        ours,
        theirs,
        ok=(0, 1),
        timeout_s=timeout_s,
    )
    # -z: tree NUL, conflicted paths NUL-terminated, an empty field, then messages as
    # <count> NUL <path>... NUL <type> NUL <text> NUL.
    fields = done.stdout.split(b"\0")
    tree = fields[0].decode()
    if done.returncode == 0:
        return tree
    names = [f.decode("utf-8", errors="surrogateescape") for f in fields[1:]]
    try:
        end = names.index("")
    except ValueError:
        end = len(names)
    paths = list(dict.fromkeys(names[:end]))
    messages = _messages(names[end + 1 :])

    def read(path: str) -> bytes | None:
        got = git(
            operation,
            repo.toplevel,
            "cat-file",
            "blob",
            f"{tree}:{path}",
            read_only=True,
            ok=(0, 128),
            max_stdout=_MAX_CONFLICTED_FILE_BYTES,
            stop_at_limit=True,
            timeout_s=timeout_s,
        )
        if got.returncode != 0 or got.cut:
            return None
        content = got.stdout
        for sha, label in zip((ours, theirs), labels or (), strict=False):
            content = _relabel(content, sha, label)
        return content

    return build_conflict(paths, messages, read)


def _relabel(content: bytes, sha: str, label: str) -> bytes:
    """Marker lines ``<<<<<<< sha`` / ``>>>>>>> sha`` as ``<<<<<<< label``."""
    marker = re.compile(rb"^(<{7}|>{7}) " + re.escape(sha.encode()) + rb"$", re.MULTILINE)
    named = label.encode()
    return marker.sub(lambda m: m[1] + b" " + named, content)


def _messages(fields: list[str]) -> dict[str, list[str]]:
    """merge-tree's informational messages, the CONFLICT ones, by path."""
    by_path: dict[str, list[str]] = {}
    i = 0
    while i < len(fields) and fields[i].isdigit():
        count = int(fields[i])
        paths = fields[i + 1 : i + 1 + count]
        kind, message = fields[i + 1 + count : i + 3 + count] or ("", "")
        i += 3 + count
        if kind.startswith("CONFLICT"):
            for path in paths:
                by_path.setdefault(path, []).append(message.strip())
    return by_path


def build_conflict(
    paths: list[str],
    messages: dict[str, list[str]],
    read: Callable[[str], bytes | None],
) -> Conflict:
    """A :class:`Conflict` of ``paths`` (bounded), each file's content from ``read``."""
    files = []
    for path in paths[:MAX_CONFLICT_FILES]:
        content = read(path)
        hunks: tuple[Hunk, ...] = ()
        omitted = 0
        notes = list(messages.get(path, ()))
        if content is not None and b"\0" in content[:8192]:
            notes.append("binary file: no conflict markers")
        elif content is not None:
            hunks, omitted = conflict_hunks(content.decode("utf-8", errors="replace"))
        files.append(
            ConflictedFile(path=path, hunks=hunks, messages=tuple(notes), lines_omitted=omitted)
        )
    return Conflict(files=tuple(files), files_omitted=max(len(paths) - MAX_CONFLICT_FILES, 0))


def conflict_hunks(
    content: str, max_lines: int = MAX_CONFLICT_LINES, context: int = CONTEXT_LINES
) -> tuple[tuple[Hunk, ...], int]:
    """The regions from ``<<<<<<<`` to ``>>>>>>>`` with ``context`` lines around them
    (overlapping ones joined), at most ``max_lines`` lines in all; and the number of
    lines left out."""
    lines = content.splitlines()
    spans: list[list[int]] = []  # [first, last] line indexes, inclusive
    i = 0
    while i < len(lines):
        if lines[i].startswith("<<<<<<<"):
            end = next(
                (j for j in range(i + 1, len(lines)) if lines[j].startswith(">>>>>>>")),
                len(lines) - 1,
            )
            first, last = max(i - context, 0), min(end + context, len(lines) - 1)
            if spans and first <= spans[-1][1] + 1:
                spans[-1][1] = last
            else:
                spans.append([first, last])
            i = end + 1
        else:
            i += 1
    hunks: list[Hunk] = []
    budget = max_lines
    omitted = 0
    for first, last in spans:
        size = last - first + 1
        if budget <= 0:
            omitted += size
            continue
        shown = min(size, budget)
        hunks.append(Hunk(line=first + 1, text="\n".join(lines[first : first + shown])))
        omitted += size - shown
        budget -= shown
    return tuple(hunks), omitted


def update_from(
    worktree: Path | str,
    branch: str,
    *,
    message: str | None = None,
    timeout_s: float = GIT_TIMEOUT_S,
) -> Merged | Conflict:
    """Bring a step's worktree up to ``branch`` (the result branch) with a real
    ``git merge`` in it: a fast-forward when the step has no commit of its own, else a
    merge commit. A conflict leaves the merge in progress with markers in the files for
    the agent to resolve (:func:`commit_all` then completes it) and returns it.

    Raises :class:`GitError` if the worktree has uncommitted changes to tracked files
    (commit them first) or a merge already in progress.
    """
    check_branch(branch)
    repo, gitdir = worktree_repository(Path(worktree), "update_from")
    with repository_lock(repo.common_dir, "update_from"):
        if (gitdir / "MERGE_HEAD").exists():
            raise GitError(f"update_from: a merge is already in progress in {repo.toplevel}")
        dirty = git(
            "update_from",
            repo.toplevel,
            "status",
            "--porcelain",
            "-z",
            "--untracked-files=no",
            read_only=True,
            timeout_s=timeout_s,
        )
        if dirty.stdout:
            raise GitError(
                f"update_from: {repo.toplevel} has uncommitted changes; commit_all them first"
            )
        head = commit_sha(repo, "HEAD", "update_from")
        source = _branch_or_fail(repo, branch, "update_from")
        if is_ancestor(repo, source, head):
            return Merged(sha=head, kind=MergeKind.UP_TO_DATE)
        done = git(
            "update_from",
            repo.toplevel,
            "merge",
            "--ff",
            "--no-edit",
            "-m",
            message or f"directorate: bring up to date with {branch}",
            f"refs/heads/{branch}",
            identity=True,
            ok=(0, 1),
            timeout_s=timeout_s,
        )
        if done.returncode == 0:
            now = commit_sha(repo, "HEAD", "update_from")
            kind = MergeKind.FAST_FORWARD if now == source else MergeKind.MERGE_COMMIT
            return Merged(sha=now, kind=kind)
        unmerged = nul_fields(
            git(
                "update_from",
                repo.toplevel,
                "diff",
                "--name-only",
                "-z",
                "--diff-filter=U",
                read_only=True,
                timeout_s=timeout_s,
            )
        )
        if not unmerged:  # it stopped before merging (untracked files in the way, ...)
            raise GitError(f"update_from: git merge failed: {first_reason(done.stderr)}")
        said = done.stdout.decode("utf-8", errors="replace").splitlines()
        messages = {
            path: [line for line in said if line.startswith("CONFLICT") and path in line]
            for path in unmerged
        }
        root = repo.toplevel

        def read(path: str) -> bytes | None:
            try:
                with (root / path).open("rb") as f:
                    return f.read(_MAX_CONFLICTED_FILE_BYTES)
            except OSError:
                return None

        return build_conflict(list(dict.fromkeys(unmerged)), messages, read)
