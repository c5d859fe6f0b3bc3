"""Delivering a directive's result branch: merged into its base branch, or as a pull request.

Delivery is where the engine reaches the user's own branch and working tree, so it
never risks them: a base branch checked out with uncommitted changes is refused before
anything is touched, and a merge that would conflict is found with ``merge-tree``
first (no working tree is ever left half-merged). Here the user's configuration holds
(hooks, signing), as it would for their own merge or push; only the committer is
directorate. Failures the user can act on are a :class:`Refused`, not an exception.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from .errors import GitError
from .gitcli import GIT_TIMEOUT_S, first_reason, git, nul_fields, run_command, text
from .locking import repository_lock
from .merging import merge_refs, merge_tree
from .records import Conflict, Delivered, MergeKind, Refused, Repository
from .repository import branch_sha, check_branch, is_ancestor
from .worktrees import list_worktrees

#: a push or ``gh pr create`` talks to a server: a longer deadline
PUSH_TIMEOUT_S = 300.0
_URL = re.compile(r"https?://\S+")
# The operations in progress that make a working tree unsafe to merge into.
_IN_PROGRESS = ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "rebase-merge", "rebase-apply")


def deliver_merge(
    repo: Repository,
    base_branch: str,
    result_branch: str,
    *,
    message: str | None = None,
    timeout_s: float = GIT_TIMEOUT_S,
) -> Delivered | Refused:
    """Merge ``result_branch`` into ``base_branch`` (a fast-forward when the base has not
    moved, else a merge commit).

    Where ``base_branch`` is checked out (the user's working tree, or any worktree), the
    merge happens there, and only if no tracked file has uncommitted changes and no
    merge, rebase or cherry-pick is in progress; otherwise it is refused with nothing
    touched (untracked files do not count: git refuses to overwrite one). Not checked
    out: the branch is moved by compare-and-swap. A conflict is refused, naming the
    files; ``result_branch`` stays either way.
    """
    check_branch(base_branch)
    check_branch(result_branch)
    message = message or f"directorate: merge {result_branch} into {base_branch}"
    with repository_lock(repo.common_dir, "deliver_merge"):
        base_sha = branch_sha(repo, base_branch)
        result_sha = branch_sha(repo, result_branch)
        if base_sha is None or result_sha is None:
            missing = base_branch if base_sha is None else result_branch
            return Refused(reason=f"there is no branch {missing} in {repo.toplevel}")
        if is_ancestor(repo, result_sha, base_sha):
            return Delivered(branch=base_branch, sha=base_sha, kind=MergeKind.UP_TO_DATE)
        if not is_ancestor(repo, base_sha, result_sha):
            # Conflicts are found without touching any working tree.
            tried = merge_tree(repo, base_sha, result_sha, "deliver_merge", timeout_s)
            if isinstance(tried, Conflict):
                return _conflict_refusal(result_branch, base_branch, tried)
        checked_out = [
            w
            for w in list_worktrees(repo)
            if w.branch == base_branch and not w.bare and not w.prunable
        ]
        if not checked_out:
            merged = merge_refs(
                repo, base_branch, result_branch, message, "deliver_merge", True, timeout_s
            )
            if isinstance(merged, Conflict):  # the base moved meanwhile and now conflicts
                return _conflict_refusal(result_branch, base_branch, merged)
            return Delivered(branch=base_branch, sha=merged.sha, kind=merged.kind)
        return _merge_in_tree(
            repo, checked_out[0].path, base_branch, result_branch, message, timeout_s
        )


def _conflict_refusal(result_branch: str, base_branch: str, conflict: Conflict) -> Refused:
    names = ", ".join(conflict.paths[:5]) + (" ..." if len(conflict.paths) > 5 else "")
    return Refused(
        reason=f"merging {result_branch} into {base_branch} conflicts in {names}",
        files=conflict.paths,
    )


def _merge_in_tree(
    repo: Repository,
    tree: Path,
    base_branch: str,
    result_branch: str,
    message: str,
    timeout_s: float,
) -> Delivered | Refused:
    gitdir = Path(
        text(git("deliver_merge", tree, "rev-parse", "--absolute-git-dir", read_only=True))
    )
    busy = [name for name in _IN_PROGRESS if (gitdir / name).exists()]
    if busy:
        return Refused(
            reason=f"{tree} has an operation in progress ({busy[0]}); nothing was changed"
        )
    status = git(
        "deliver_merge",
        tree,
        "status",
        "--porcelain",
        "-z",
        "--untracked-files=no",
        "--no-renames",
        read_only=True,
        engine=False,
        timeout_s=timeout_s,
    )
    # Entries are "XY path" (--no-renames: never a second name).
    dirty = [f[3:] for f in nul_fields(status) if len(f) > 3 and f[2] == " "]
    if dirty:
        names = ", ".join(dirty[:5]) + (" ..." if len(dirty) > 5 else "")
        return Refused(
            reason=f"{base_branch} is checked out in {tree} with uncommitted changes "
            f"({names}); nothing was changed, {result_branch} is kept",
            files=tuple(dirty),
        )
    done = git(
        "deliver_merge",
        tree,
        "merge",
        "--ff",
        "--no-edit",
        "-m",
        message,
        f"refs/heads/{result_branch}",
        engine=False,
        identity=True,
        ok=(0, 1, 128),
        timeout_s=timeout_s,
    )
    if done.returncode != 0:
        if (gitdir / "MERGE_HEAD").exists():  # it began after all: take it back
            git("deliver_merge", tree, "merge", "--abort", engine=False, ok=(0, 128))
        return Refused(reason=f"git merge in {tree} failed: {first_reason(done.stderr)}")
    after = text(git("deliver_merge", tree, "rev-parse", "HEAD", read_only=True))
    fast_forward = after == branch_sha(repo, result_branch)  # (up to date was ruled out)
    kind = MergeKind.FAST_FORWARD if fast_forward else MergeKind.MERGE_COMMIT
    return Delivered(branch=base_branch, sha=after, kind=kind)


def deliver_pull_request(
    repo: Repository,
    branch: str,
    base_branch: str,
    *,
    title: str,
    body: str,
    remote: str = "origin",
    gh: str = "gh",
    timeout_s: float = PUSH_TIMEOUT_S,
) -> Delivered | Refused:
    """Push ``branch`` to ``remote`` and open a pull request into ``base_branch`` with
    ``gh pr create``.

    A missing remote or a failed push (no credential, rejected) is refused with git's
    reason; a missing ``gh`` or a failing one is refused with ``pushed=True`` (the
    branch is on the remote). A pull request already open for the branch is delivered
    (``existing=True``), so a delivery repeated after a crash is not an error.

    The push holds no repository lock: it moves only the remote-tracking ref, which no
    engine operation touches, and it may take minutes.
    """
    check_branch(branch)
    check_branch(base_branch)
    if not remote or remote.startswith("-"):
        return Refused(reason=f"{remote!r} is not a remote name")
    sha = branch_sha(repo, branch)
    if sha is None:
        return Refused(reason=f"there is no branch {branch} in {repo.toplevel}")
    known = git("deliver_pull_request", repo.toplevel, "remote", read_only=True)
    if remote not in text(known).splitlines():
        return Refused(reason=f"there is no remote {remote!r} in {repo.toplevel}")
    try:
        pushed = git(
            "deliver_pull_request",
            repo.toplevel,
            "push",
            "--quiet",
            remote,
            f"refs/heads/{branch}:refs/heads/{branch}",
            engine=False,
            ok=(0, 1, 128),
            timeout_s=timeout_s,
        )
    except GitError as exc:  # a timeout: a server that does not answer is a refusal too
        return Refused(reason=str(exc))
    if pushed.returncode != 0:
        return Refused(reason=f"git push {remote} {branch} failed: {first_reason(pushed.stderr)}")
    return _open_pull_request(repo, branch, base_branch, sha, title, body, remote, gh, timeout_s)


def _open_pull_request(
    repo: Repository,
    branch: str,
    base_branch: str,
    sha: str,
    title: str,
    body: str,
    remote: str,
    gh: str,
    timeout_s: float,
) -> Delivered | Refused:
    after_push = f"; {branch} was pushed to {remote}"
    env = {
        **os.environ,
        "GH_PROMPT_DISABLED": "1",  # never wait for an answer no one will type
        "GH_NO_UPDATE_NOTIFIER": "1",
        "NO_COLOR": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }
    with tempfile.TemporaryDirectory(prefix="directorate-pr-") as scratch:
        body_file = Path(scratch) / "body.md"
        body_file.write_text(body, encoding="utf-8")
        # --flag=value: a title starting with "-" stays a value, never an option.
        argv = [
            gh,
            "pr",
            "create",
            f"--base={base_branch}",
            f"--head={branch}",
            f"--title={title}",
            f"--body-file={body_file}",
        ]
        try:
            done = run_command(argv, cwd=repo.toplevel, env=env, timeout_s=timeout_s)
        except FileNotFoundError:
            return Refused(
                reason=f"gh is not installed (no {gh!r} on PATH){after_push}", pushed=True
            )
        except OSError as exc:
            return Refused(reason=f"cannot run {gh!r}: {exc.strerror}{after_push}", pushed=True)
    said = done.stdout.decode("utf-8", errors="replace")
    if done.timed_out:
        return Refused(
            reason=f"gh pr create timed out after {timeout_s:g} s{after_push}", pushed=True
        )
    if done.returncode != 0:
        already = re.search(r"already exists:?\s*(https?://\S+)", done.stderr + said)
        if already:
            return Delivered(branch=branch, sha=sha, url=already[1], existing=True)
        return Refused(
            reason=f"gh pr create failed: {first_reason(done.stderr or said)}{after_push}",
            pushed=True,
        )
    urls = _URL.findall(said)
    return Delivered(branch=branch, sha=sha, url=urls[-1] if urls else said.strip() or None)
