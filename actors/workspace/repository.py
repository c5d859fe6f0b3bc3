"""Finding a repository, giving a plain folder one, naming a base, making branches."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from .errors import GitError, InvalidName
from .gitcli import GIT_TIMEOUT_S, first_reason, git, text
from .locking import repository_lock
from .records import Base, Branch, Repository

BASELINE_MESSAGE = "directorate: baseline of {name}"


def find_repository(path: Path | str) -> Repository | None:
    """The repository whose working tree holds ``path``, or None if it is in none.

    A linked worktree is a repository of its own here (its toplevel), sharing its
    common git dir (and so its lock) with the main one. Raises :class:`GitError` for a
    missing folder, a bare repository or one git refuses (``safe.directory``).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise GitError(f"find_repository: no such directory: {folder}")
    done = git(
        "find_repository",
        folder,
        "rev-parse",
        "--path-format=absolute",
        "--show-toplevel",
        "--git-common-dir",
        read_only=True,
        ok=(0, 128),
    )
    if done.returncode != 0:
        if "not a git repository" in done.stderr:
            return None
        raise GitError(f"find_repository: {folder}: {first_reason(done.stderr)}")
    toplevel, common_dir = text(done).split("\n")
    return Repository(toplevel=Path(os.path.realpath(toplevel)), common_dir=Path(common_dir))


def worktree_repository(worktree: Path, operation: str) -> tuple[Repository, Path]:
    """The repository whose working tree is exactly the folder ``worktree``, and that
    worktree's own git dir.

    Exactly: a worktree whose ``.git`` an agent removed must not resolve to a repository
    above it (a home folder kept in git, say), where ``add --all`` would commit the wrong
    files and ``clean`` would remove them."""
    repo = find_repository(worktree)
    if repo is None or repo.toplevel != Path(os.path.realpath(worktree)):
        raise GitError(f"{operation}: {worktree} is not a git worktree")
    done = git(operation, repo.toplevel, "rev-parse", "--absolute-git-dir", read_only=True)
    return repo, Path(text(done))


def init_baseline(path: Path | str, *, timeout_s: float = GIT_TIMEOUT_S) -> Repository:
    """Make the folder ``path`` a repository with one baseline commit of everything in it
    (an empty commit for an empty folder), on branch ``main``.

    Idempotent: a folder that is already a repository's toplevel keeps its history (a
    baseline commit is made only if it has no commit yet). A folder inside another
    repository becomes a nested repository of its own.
    """
    folder = Path(path)
    found = find_repository(folder)
    if found is None or not os.path.samefile(found.toplevel, folder):
        git("init_baseline", folder, "init", "--quiet", "--initial-branch=main")
        found = find_repository(folder)
        assert found is not None
    with repository_lock(found.common_dir, "init_baseline"):
        if _commit_or_none(found, "HEAD") is None:
            git("init_baseline", folder, "add", "--all", timeout_s=timeout_s)
            message = BASELINE_MESSAGE.format(name=folder.resolve().name)
            git(
                "init_baseline",
                folder,
                "commit",
                "--quiet",
                "--no-verify",
                "--allow-empty",
                "-m",
                message,
                identity=True,
                timeout_s=timeout_s,
            )
    return found


def resolve_base(repo: Repository, base: str | None = None) -> Base:
    """The commit a directive starts from: ``base`` (a branch, tag or commit) or, when
    None, the current HEAD; with the local branch it names, if any.

    Raises :class:`GitError` for an empty repository or a name that is not a commit.
    """
    if base is None:
        sha = _commit_or_none(repo, "HEAD")
        if sha is None:
            raise GitError(f"resolve_base: the repository {repo.toplevel} has no commit yet")
        done = git(
            "resolve_base",
            repo.toplevel,
            "symbolic-ref",
            "--quiet",
            "HEAD",
            read_only=True,
            ok=(0, 1),
        )
        ref = text(done) if done.returncode == 0 else ""
        return Base(branch=ref.removeprefix("refs/heads/") if _is_branch(ref) else None, sha=sha)
    if not base or base.startswith("-"):  # never an option in disguise
        raise InvalidName(f"resolve_base: {base!r} is not a branch, tag or commit")
    sha = _commit_or_none(repo, base)
    if sha is None:
        if _commit_or_none(repo, "HEAD") is None:
            raise GitError(f"resolve_base: the repository {repo.toplevel} has no commit yet")
        raise GitError(f"resolve_base: {base!r} is not a branch, tag or commit in {repo.toplevel}")
    done = git(
        "resolve_base",
        repo.toplevel,
        "rev-parse",
        "--symbolic-full-name",
        base,
        read_only=True,
        ok=(0, 128),
    )
    ref = text(done) if done.returncode == 0 else ""
    return Base(branch=ref.removeprefix("refs/heads/") if _is_branch(ref) else None, sha=sha)


def _is_branch(ref: str) -> bool:
    return ref.startswith("refs/heads/") and "\n" not in ref


def create_branch(
    repo: Repository, name: str, start_sha: str, *, timeout_s: float = GIT_TIMEOUT_S
) -> Branch:
    """The branch ``name``, made at ``start_sha`` unless it exists (at whatever commit:
    then it is kept, ``created=False``). Never moves an existing branch."""
    check_branch(name)
    with repository_lock(repo.common_dir, "create_branch"):
        start = commit_sha(repo, start_sha, "create_branch")
        # An empty old value: create only if absent, atomically (git's own ref lock).
        done = git(
            "create_branch",
            repo.toplevel,
            "update-ref",
            "-m",
            "directorate: create branch",
            f"refs/heads/{name}",
            start,
            "",
            ok=(0, 128),
            timeout_s=timeout_s,
        )
        if done.returncode == 0:
            return Branch(name=name, sha=start, created=True)
        existing = branch_sha(repo, name)
        if existing is None:  # not "already exists": e.g. refs/heads/a blocks refs/heads/a/b
            raise GitError(f"create_branch: git update-ref failed: {first_reason(done.stderr)}")
        return Branch(name=name, sha=existing, created=False)


def commit_sha(repo: Repository, rev: str, operation: str) -> str:
    """The full sha of the commit ``rev`` names; :class:`GitError` if it names none."""
    if not rev or rev.startswith("-"):
        raise InvalidName(f"{operation}: {rev!r} is not a commit")
    sha = _commit_or_none(repo, rev)
    if sha is None:
        raise GitError(f"{operation}: {rev!r} is not a commit in {repo.toplevel}")
    return sha


def _commit_or_none(repo: Repository, rev: str) -> str | None:
    done = git(
        "rev-parse",
        repo.toplevel,
        "rev-parse",
        "--verify",
        "--quiet",
        f"{rev}^{{commit}}",
        read_only=True,
        ok=(0, 1, 128),
    )
    return text(done) if done.returncode == 0 else None


def branch_sha(repo: Repository, name: str) -> str | None:
    """Where the local branch ``name`` points, None if there is no such branch."""
    return _commit_or_none(repo, f"refs/heads/{check_branch(name)}")


def head_commit(repo: Repository) -> str | None:
    """The commit HEAD points at; None in a repository with no commit yet."""
    return _commit_or_none(repo, "HEAD")


def merge_base(repo: Repository, one: str, other: str) -> str | None:
    """Where ``one`` and ``other`` forked (a step's branch from the result branch)."""
    done = git("merge_base", repo.toplevel, "merge-base", one, other, read_only=True, ok=(0, 1))
    if done.returncode != 0:  # no common commit
        return None
    return text(done) or None


def is_ancestor(repo: Repository, ancestor: str, descendant: str) -> bool:
    done = git(
        "merge-base",
        repo.toplevel,
        "merge-base",
        "--is-ancestor",
        ancestor,
        descendant,
        read_only=True,
        ok=(0, 1),
    )
    return done.returncode == 0


def check_branch(name: str) -> str:
    """``name`` if it is a branch name git accepts and not an option, else :class:`InvalidName`."""
    if not isinstance(name, str) or not _valid_branch(name):
        raise InvalidName(f"{name!r} is not a valid branch name")
    return name


@functools.lru_cache(maxsize=4096)
def _valid_branch(name: str) -> bool:
    if not name or name.startswith("-") or "\0" in name or name == "HEAD":
        return False
    # git's own rule, outside any repository (no ~, ^, :, .., @{, .lock, ...).
    done = git("check_branch", Path("/"), "check-ref-format", f"refs/heads/{name}", ok=(0, 1))
    return done.returncode == 0
