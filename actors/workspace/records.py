"""What the workspace operations return: frozen, keyword-only records."""

from __future__ import annotations

import enum
from pathlib import Path

import attrs

from directorate.verifiers.process import Completed


@attrs.frozen(kw_only=True)
class Repository:
    """A git repository with a working tree."""

    toplevel: Path  #: the root of the working tree the path was in (absolute, resolved)
    common_dir: Path  #: the git dir its worktrees share (absolute): what the lock is keyed by


@attrs.frozen(kw_only=True)
class Base:
    """What a directive starts from."""

    branch: str | None  #: the local branch it names (``main``); None: a tag, sha, detached HEAD
    sha: str  #: the commit


@attrs.frozen(kw_only=True)
class Branch:
    """A branch after :func:`create_branch`."""

    name: str
    sha: str  #: where it points now
    created: bool  #: False: it existed already (at ``sha``, which may differ from the start)


class WorktreeState(enum.Enum):
    """What :func:`ensure_worktree` found."""

    CREATED = "created"  #: no worktree was there: added
    REUSED = "reused"  #: a valid worktree was there: left as it was
    RECREATED = "recreated"  #: its folder was gone: pruned and added again from its branch


@attrs.frozen(kw_only=True)
class Worktree:
    """A step's worktree."""

    path: Path  #: its folder (absolute, resolved)
    branch: str  #: the branch checked out in it
    head: str  #: the commit its branch points at
    state: WorktreeState
    branch_created: bool  #: the branch was made from the start commit for it


@attrs.frozen(kw_only=True)
class DiffStat:
    """What changed between two commits, as ``git diff --numstat`` counts it."""

    files: int  #: files changed (a binary file counts here, and in neither line count)
    insertions: int
    deletions: int


@attrs.frozen(kw_only=True)
class StepCommit:
    """A step branch after :func:`commit_all`."""

    head: str  #: the step branch's commit now
    committed: bool  #: a commit was made (False: nothing was left uncommitted)
    completed_merge: bool  #: that commit finished a merge the agent resolved
    stat: DiffStat  #: what the branch changed since the base it was given
    #: files that still hold conflict markers after a merge was completed: do not merge them
    conflict_markers: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Discarded:
    """A worktree after :func:`discard_uncommitted`."""

    head: str  #: the commit it was reset to
    removed: tuple[str, ...]  #: untracked files and folders removed (as git clean names them)
    aborted: str | None  #: the operation in progress that was abandoned ("merge", "rebase", ...)


class MergeKind(enum.Enum):
    """How a merge landed."""

    MERGE_COMMIT = "merge-commit"
    FAST_FORWARD = "fast-forward"
    UP_TO_DATE = "up-to-date"  #: the source was already in the target: nothing changed


@attrs.frozen(kw_only=True)
class Merged:
    """A merge that succeeded."""

    sha: str  #: the target's commit now
    kind: MergeKind


@attrs.frozen(kw_only=True)
class Hunk:
    """One conflicted region, markers included, with a little context."""

    line: int  #: the 1-based line of its first line in the conflicted file
    text: str


@attrs.frozen(kw_only=True)
class ConflictedFile:
    """One file a merge could not reconcile."""

    path: str
    hunks: tuple[Hunk, ...]  #: empty when git wrote no markers (binary, modify/delete, ...)
    messages: tuple[str, ...]  #: git's CONFLICT lines about this file
    lines_omitted: int = 0  #: hunk lines left out to keep the quote bounded


@attrs.frozen(kw_only=True)
class Conflict:
    """A merge that did not succeed; the target branch was left unchanged (or, in a
    worktree, the markers were left in the files)."""

    files: tuple[ConflictedFile, ...]
    files_omitted: int = 0  #: conflicted files beyond the bound, not quoted

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files)

    def quote(self) -> str:
        """The conflict as text for an agent's instructions."""
        parts: list[str] = []
        for conflicted in self.files:
            parts.append(f"### {conflicted.path}")
            parts.extend(conflicted.messages)
            for hunk in conflicted.hunks:
                parts.append(f"line {hunk.line}:\n{hunk.text}")
            if conflicted.lines_omitted:
                parts.append(f"[... {conflicted.lines_omitted} more lines of conflict ...]")
        if self.files_omitted:
            parts.append(f"[... and {self.files_omitted} more conflicted files ...]")
        return "\n".join(parts)


@attrs.frozen(kw_only=True)
class Delivered:
    """The result reached the user."""

    branch: str  #: the branch that now holds the result (the base branch, or the pushed one)
    sha: str  #: its commit
    kind: MergeKind | None = None  #: how a merge delivery landed; None for a pull request
    url: str | None = None  #: the pull request's address
    existing: bool = False  #: the pull request was already open (a delivery repeated)


@attrs.frozen(kw_only=True)
class Refused:
    """The result could not be delivered; nothing of the user's was touched."""

    reason: str  #: one line, for a ``delivery_failed`` event
    files: tuple[str, ...] = ()  #: the files in the way (dirty or conflicting), if that was why
    pushed: bool = False  #: the branch did reach the remote (a pull request could not be opened)


@attrs.frozen(kw_only=True)
class SetupCommand:
    """One setup command and how it ended."""

    argv: tuple[str, ...]
    completed: Completed

    @property
    def ok(self) -> bool:
        return self.completed.exit_code == 0


@attrs.frozen(kw_only=True)
class SetupResult:
    """The setup commands run in a worktree, in order, up to the first that failed."""

    commands: tuple[SetupCommand, ...]
    skipped: tuple[tuple[str, ...], ...] = ()  #: commands after a failure, not run

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.commands) and not self.skipped


@attrs.frozen(kw_only=True)
class Copied:
    """Ignored files copied from the user's working tree into a worktree."""

    files: tuple[str, ...]  #: copied, relative to the repository root
    skipped: tuple[str, ...] = ()  #: "path: why", e.g. a symlink pointing out of the repository
