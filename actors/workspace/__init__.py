"""Workspaces: the git layer of issue 10 (a worktree per step, merged into a result branch).

Everything goes through the git CLI (git 2.38 or newer, for ``merge-tree
--write-tree``): argv lists, a deadline on every call that kills git's process group,
bounded output, no prompt, pager or editor, and a fixed identity (``directorate
<directorate@localhost>``) on the engine's commits. Calls that update refs or
worktrees hold a per-repository lock (a thread lock and an ``flock`` on a file in the
common git dir); reads take none. Every call blocks: run it on a worker, never on an
actor thread. This package imports nothing from the engine or the database. Failures
raise :class:`GitError` (one line: the operation and git's reason); a bad name raises
:class:`InvalidName` (a ``GitError`` and a ``ValueError``). Outcomes the caller acts on
(a conflict, a refused delivery) are returned, not raised.

Names (:mod:`.names`)
    ``branch_name(directive, step=None) -> str``: ``directorate/<short-id>`` (the result
    branch) or ``directorate/<short-id>-steps/<step>``; ``worktree_path(home, directive,
    step) -> Path``: ``<home>/worktrees/<short-id>/<step>``; ``short_id``,
    ``check_step_name`` (kebab-case, at most 200 characters, else ``InvalidName``).

Repository
    ``find_repository(path) -> Repository | None``; ``init_baseline(path) -> Repository``
    (a folder made a repository with one baseline commit; idempotent);
    ``resolve_base(repo, base=None) -> Base`` (branch or None, sha; ``GitError`` for an
    unknown name or an empty repository); ``create_branch(repo, name, start_sha) ->
    Branch`` (kept if it exists: ``created=False``); ``branch_sha``, ``head_commit`` and
    ``merge_base`` (None when there is none).

Worktrees
    ``ensure_worktree(repo, path, branch, start_sha) -> Worktree`` (state CREATED,
    REUSED or RECREATED from its branch after a prune); ``remove_worktree(repo, path) ->
    bool`` (forced, then pruned; the branch stays); ``prune(repo)``;
    ``checkout_detached(repo, path, rev) -> Path`` (a read-only look at a branch);
    ``copy_ignored(repo_root, worktree, globs) -> Copied`` (ignored files matching
    ``globs`` or ``.worktreeinclude``); ``run_setup(worktree, commands, env=None,
    timeout_s=...) -> SetupResult`` (stops at the first failure).

A step's work
    ``commit_all(worktree, message, base=sha, branch=None) -> StepCommit`` (head,
    committed or not, a merge completed, numstat since ``base``, files left with conflict
    markers); ``discard_uncommitted(worktree, branch=None) -> Discarded``; ``diff(repo,
    base, head, max_chars=...) -> str`` and ``diff_stat(repo, base, head) -> DiffStat``
    (both ``base...head``: what head did since it forked).

Merging
    ``merge_step(repo, target_branch, source_branch, message) -> Merged | Conflict``
    (merge-tree, commit-tree, compare-and-swap update-ref; always a merge commit; a
    conflict leaves the target unchanged and quotes at most 20 files, 200 lines each);
    ``update_from(worktree, branch) -> Merged | Conflict`` (a real merge in the step's
    worktree; a conflict leaves markers for the agent, ``commit_all`` completes it).

Delivery
    ``deliver_merge(repo, base_branch, result_branch) -> Delivered | Refused`` (merged in
    the working tree that has the base branch checked out, only if it is clean; else by
    compare-and-swap; a conflict is refused); ``deliver_pull_request(repo, branch,
    base_branch, title=, body=, remote="origin", gh="gh") -> Delivered | Refused``
    (push, then ``gh pr create``; ``Refused.pushed`` says whether the branch got there).
"""

from .commits import commit_all, diff, diff_stat, discard_uncommitted
from .delivery import deliver_merge, deliver_pull_request
from .errors import GitError, InvalidName
from .merging import merge_step, update_from
from .names import branch_name, check_step_name, short_id, worktree_path
from .preparation import WORKTREEINCLUDE, copy_ignored, run_setup
from .records import (
    Base,
    Branch,
    Conflict,
    ConflictedFile,
    Copied,
    Delivered,
    DiffStat,
    Discarded,
    Hunk,
    Merged,
    MergeKind,
    Refused,
    Repository,
    SetupCommand,
    SetupResult,
    StepCommit,
    Worktree,
    WorktreeState,
)
from .repository import (
    branch_sha,
    create_branch,
    find_repository,
    head_commit,
    init_baseline,
    merge_base,
    resolve_base,
)
from .worktrees import checkout_detached, ensure_worktree, prune, remove_worktree

__all__ = [
    "WORKTREEINCLUDE",
    "Base",
    "Branch",
    "Conflict",
    "ConflictedFile",
    "Copied",
    "Delivered",
    "DiffStat",
    "Discarded",
    "GitError",
    "Hunk",
    "InvalidName",
    "MergeKind",
    "Merged",
    "Refused",
    "Repository",
    "SetupCommand",
    "SetupResult",
    "StepCommit",
    "Worktree",
    "WorktreeState",
    "branch_name",
    "branch_sha",
    "check_step_name",
    "checkout_detached",
    "commit_all",
    "copy_ignored",
    "create_branch",
    "deliver_merge",
    "deliver_pull_request",
    "diff",
    "diff_stat",
    "discard_uncommitted",
    "ensure_worktree",
    "find_repository",
    "head_commit",
    "init_baseline",
    "merge_base",
    "merge_step",
    "prune",
    "remove_worktree",
    "resolve_base",
    "run_setup",
    "short_id",
    "update_from",
    "worktree_path",
]
