"""A step's worktree: made, found again, re-made from its branch, removed."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import attrs

from .errors import GitError
from .gitcli import GIT_TIMEOUT_S, git, nul_fields
from .locking import repository_lock
from .records import Repository, Worktree, WorktreeState
from .repository import branch_sha, check_branch, create_branch


@attrs.frozen(kw_only=True)
class ListedWorktree:
    """One entry of ``git worktree list --porcelain``."""

    path: Path
    head: str | None
    branch: str | None  #: the short branch name, None when detached or bare
    bare: bool = False
    locked: str | None = None  #: why it is locked ("" if no reason was given), None if not
    prunable: bool = False  #: its folder (or the folder's .git file) is gone


#: the lock reason `git worktree add` gives a worktree until it is complete
_BEING_MADE = "initializing"


def list_worktrees(repo: Repository) -> list[ListedWorktree]:
    """Every worktree of the repository, the main one first."""
    done = git(
        "list_worktrees", repo.toplevel, "worktree", "list", "--porcelain", "-z", read_only=True
    )
    entries: list[ListedWorktree] = []
    fields: dict[str, str] = {}
    # Attributes end in NUL; an empty field (two NULs) ends an entry.
    for field in [*nul_fields(done), ""]:
        if field:
            key, _, value = field.partition(" ")
            fields[key] = value
            continue
        if "worktree" in fields:
            branch = fields.get("branch")
            entries.append(
                ListedWorktree(
                    path=Path(fields["worktree"]),
                    head=fields.get("HEAD"),
                    branch=branch.removeprefix("refs/heads/") if branch else None,
                    bare="bare" in fields,
                    locked=fields.get("locked"),
                    prunable="prunable" in fields,
                )
            )
        fields = {}
    return entries


def find_worktree(repo: Repository, path: Path) -> ListedWorktree | None:
    """The repository's worktree registered at ``path``, if any."""
    wanted = os.path.realpath(path)
    for entry in list_worktrees(repo):
        if os.path.realpath(entry.path) == wanted:
            return entry
    return None


def ensure_worktree(
    repo: Repository,
    path: Path | str,
    branch: str,
    start_sha: str,
    *,
    timeout_s: float = GIT_TIMEOUT_S,
) -> Worktree:
    """A worktree at ``path`` on ``branch`` (made from ``start_sha`` if it does not exist).

    A valid worktree already there is reused as it is (a rework attempt sees its previous
    attempt); one whose folder is gone is pruned and made again from its branch, and so
    is one a killed ``git worktree add`` left half-made (still locked "initializing"). Raises
    :class:`GitError` when ``path`` is inside the repository's working tree, when a
    folder that is not this repository's worktree is in the way, or when the worktree
    there has another branch checked out (``discard_uncommitted(path, branch=...)``
    puts it back).
    """
    check_branch(branch)
    where = Path(os.path.abspath(path))
    _refuse_inside(repo, where)
    with repository_lock(repo.common_dir, "ensure_worktree"):
        # A `worktree add` killed half-way (the engine itself was, say): some of its
        # files are missing, which would look like the agent deleted them. Make it again.
        half_made = _forget_half_made(repo, where, failed_here=False)
        listed = find_worktree(repo, where)
        registered = half_made or listed is not None
        if listed is not None and not listed.prunable and where.is_dir():
            if listed.branch != branch:
                on = f"branch {listed.branch}" if listed.branch else "a detached HEAD"
                raise GitError(f"ensure_worktree: {where} has {on} checked out, not {branch}")
            assert listed.head is not None
            return Worktree(
                path=Path(os.path.realpath(where)),
                branch=branch,
                head=listed.head,
                state=WorktreeState.REUSED,
                branch_created=False,
            )
        if listed is not None:
            # Registered here, but its folder (or the folder's .git) is gone: forget it and
            # make it again from its branch. A folder left at the registered path was this
            # worktree's, with nothing committed in it: it goes too.
            if listed.locked is not None:  # prune never forgets a locked worktree
                git("ensure_worktree", repo.toplevel, "worktree", "unlock", str(where), ok=(0, 128))
            git("ensure_worktree", repo.toplevel, "worktree", "prune", timeout_s=timeout_s)
            if where.is_dir() and not where.is_symlink():
                shutil.rmtree(where)
        if where.exists() and (not where.is_dir() or any(where.iterdir())):
            raise GitError(
                f"ensure_worktree: {where} exists and is not a worktree of {repo.toplevel}; "
                "not touching it"
            )
        made = create_branch(repo, branch, start_sha, timeout_s=timeout_s)
        _add(repo, where, branch, timeout_s)
        head = branch_sha(repo, branch)
        assert head is not None
        return Worktree(
            path=Path(os.path.realpath(where)),
            branch=branch,
            head=head,
            state=WorktreeState.RECREATED if registered else WorktreeState.CREATED,
            branch_created=made.created,
        )


def _refuse_inside(repo: Repository, where: Path) -> None:
    real = Path(os.path.realpath(where))
    for inside in (repo.toplevel, repo.common_dir):
        if real == inside or inside in real.parents:
            raise GitError(
                f"ensure_worktree: {where} is inside {inside}; worktrees live outside "
                "the user's repository"
            )


def _add(repo: Repository, where: Path, branch: str, timeout_s: float) -> None:
    """``git worktree add``; on failure (a timeout included) nothing half-made is left.
    ``where`` is absent or an empty folder: whatever is in it after a failure is git's."""
    try:
        git(
            "ensure_worktree",
            repo.toplevel,
            "worktree",
            "add",
            "--quiet",
            str(where),
            branch,
            timeout_s=timeout_s,
        )
    except GitError:
        # By files, not by git: killed mid-write, git's own records of the worktree can be
        # unreadable to git (an empty `commondir` fails every `git worktree` command).
        _forget_half_made(repo, where, failed_here=True)
        shutil.rmtree(where, ignore_errors=True)
        with contextlib.suppress(GitError):
            git("ensure_worktree", repo.toplevel, "worktree", "prune")
        raise


def _forget_half_made(repo: Repository, where: Path, *, failed_here: bool) -> bool:
    """Remove git's administrative folders of worktrees of ``where`` that a killed
    ``git worktree add`` left; True when one of them was registered at ``where`` (its
    folder then goes too).

    `add` makes the folder (named after ``where``, with a number when the name is
    taken), writes ``locked`` ("initializing"), then ``gitdir``, then the rest, and
    unlocks when the checkout is complete. Killed before ``gitdir``, git lists no
    worktree for the folder, and prune leaves it, being locked, for ever. Killed later,
    the worktree stays locked "initializing". When our own `add` has just failed
    (``failed_here``) every folder of ``where`` is that `add`'s. A folder locked for any
    other reason, or registered elsewhere, is someone else's and is never touched."""
    admin = repo.common_dir / "worktrees"
    if not admin.is_dir():
        return False
    here = os.path.realpath(where)
    was_here = False
    for entry in admin.iterdir():
        suffix = entry.name[len(where.name) :]
        if not entry.name.startswith(where.name) or not (suffix == "" or suffix.isdigit()):
            continue
        try:
            gitdir, locked = _read(entry / "gitdir").strip(), _read(entry / "locked")
            points_here = bool(gitdir) and os.path.realpath(Path(gitdir).parent) == here
            if not gitdir:
                ours = failed_here or f"{_BEING_MADE}\n".startswith(locked)
            else:
                ours = points_here and (failed_here or locked.strip() == _BEING_MADE)
            if ours:
                shutil.rmtree(entry)
                was_here = was_here or points_here
        except OSError:
            continue
    if was_here and where.is_dir() and not where.is_symlink():
        shutil.rmtree(where)
    return was_here


def _read(path: Path) -> str:
    """The file's text, "" when there is none."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def remove_worktree(
    repo: Repository, path: Path | str, *, timeout_s: float = GIT_TIMEOUT_S
) -> bool:
    """Remove the worktree at ``path`` (uncommitted changes and all; locked or not), then
    prune. Its branch stays. False when no worktree of the repository was there.

    The folder holding it (``worktrees/<short-id>``) is left for the caller."""
    where = Path(os.path.abspath(path))
    with repository_lock(repo.common_dir, "remove_worktree"):
        listed = find_worktree(repo, where)
        if listed is not None and where.exists():
            _force_remove(repo, where, "remove_worktree", timeout_s=timeout_s)
        elif listed is not None and listed.locked is not None:
            git("remove_worktree", repo.toplevel, "worktree", "unlock", str(where), ok=(0, 128))
        git("remove_worktree", repo.toplevel, "worktree", "prune", timeout_s=timeout_s)
        return listed is not None


def _force_remove(
    repo: Repository,
    where: Path,
    operation: str,
    *,
    ok: tuple[int, ...] = (0,),
    timeout_s: float = GIT_TIMEOUT_S,
) -> None:
    # Twice --force: also a locked worktree (one whose `add` was killed).
    git(
        operation,
        repo.toplevel,
        "worktree",
        "remove",
        "--force",
        "--force",
        str(where),
        ok=ok,
        timeout_s=timeout_s,
    )


def checkout_detached(
    repo: Repository, path: Path | str, rev: str, *, timeout_s: float = GIT_TIMEOUT_S
) -> Path:
    """A worktree at ``path`` with ``rev`` checked out detached (no branch of its own,
    so the branch ``rev`` names can move while it exists), made or brought to ``rev``,
    with nothing else in it. For reading: a directive review of its result branch."""
    where = Path(os.path.abspath(path))
    _refuse_inside(repo, where)
    with repository_lock(repo.common_dir, "checkout_detached"):
        if find_worktree(repo, where) is None or not where.exists():
            git("checkout_detached", repo.toplevel, "worktree", "prune", timeout_s=timeout_s)
            where.parent.mkdir(parents=True, exist_ok=True)
            git(
                "checkout_detached",
                repo.toplevel,
                "worktree",
                "add",
                "--detach",
                str(where),
                rev,
                timeout_s=timeout_s,
            )
        else:
            git(
                "checkout_detached",
                where,
                "checkout",
                "--detach",
                "--force",
                rev,
                timeout_s=timeout_s,
            )
            git("checkout_detached", where, "clean", "-fd", timeout_s=timeout_s)
    return where


def prune(repo: Repository, *, timeout_s: float = GIT_TIMEOUT_S) -> None:
    """Forget worktrees whose folders are gone (``git worktree prune``)."""
    with repository_lock(repo.common_dir, "prune"):
        git("prune", repo.toplevel, "worktree", "prune", timeout_s=timeout_s)
