"""Making a new worktree ready for its agent: ignored files copied in, setup commands run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from directorate.verifiers.process import run_bounded

from .errors import GitError
from .gitcli import GIT_TIMEOUT_S, git, nul_fields
from .records import Copied, SetupCommand, SetupResult

#: gitignore-style patterns of ignored files to copy into every worktree (Claude Code's
#: file, shared by Conductor, Codex and others), read at the repository root
WORKTREEINCLUDE = ".worktreeinclude"
#: the default deadline of one setup command
SETUP_TIMEOUT_S = 600.0


def run_setup(
    worktree: Path | str,
    commands: Sequence[Sequence[str]],
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = SETUP_TIMEOUT_S,
) -> SetupResult:
    """Run each argv of ``commands`` in ``worktree``, in order, each within ``timeout_s``
    (its process group killed after), stopping at the first that fails: what follows a
    failed install would only fail in its turn. ``env`` is the whole environment (None:
    this process's). Output is bounded as a verifier's is."""
    folder = Path(worktree)
    done: list[SetupCommand] = []
    for index, argv in enumerate(commands):
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError(f"setup[{index}]: {argv!r} is not a non-empty list of strings")
        completed = run_bounded(argv, cwd=folder, timeout_s=timeout_s, env=env)
        done.append(SetupCommand(argv=tuple(argv), completed=completed))
        if completed.exit_code != 0:
            rest = tuple(tuple(a) for a in commands[index + 1 :])
            return SetupResult(commands=tuple(done), skipped=rest)
    return SetupResult(commands=tuple(done))


def copy_ignored(
    repo_root: Path | str,
    worktree: Path | str,
    globs: Sequence[str] = (),
    *,
    timeout_s: float = GIT_TIMEOUT_S,
) -> Copied:
    """Copy into ``worktree`` the files of the user's working tree at ``repo_root`` that
    match ``globs`` or the patterns of its ``.worktreeinclude`` (both gitignore-style,
    relative to the root) and that git ignores there, such as ``.env``.

    Only ignored files: a tracked file comes from the commit, and an untracked one that
    is not ignored would be committed as if the agent had written it. So a copy that
    the worktree itself would not ignore (its ignore rule is not committed) is taken
    back. Regular files, and relative symlinks that stay inside the repository; never
    through a symlink, never over a file already in the worktree.
    """
    root = Path(os.path.realpath(repo_root))
    target = Path(os.path.realpath(worktree))
    include = root / WORKTREEINCLUDE
    patterns = [g for g in globs if g.strip()]
    if not patterns and not include.is_file():
        return Copied(files=())
    listing = ["ls-files", "-z", "--others", "--ignored"]
    listing += [f"--exclude={pattern}" for pattern in patterns]
    if include.is_file():
        listing.append(f"--exclude-from={include}")
    # The files the patterns match, then those of them git really ignores.
    matched = nul_fields(git("copy_ignored", root, *listing, read_only=True, timeout_s=timeout_s))
    candidates = _ignored(root, matched, timeout_s)
    copied: list[str] = []
    skipped: list[str] = []
    for name in candidates:
        why = _copy_one(root, target, name)
        if why is None:
            copied.append(name)
        else:
            skipped.append(f"{name}: {why}")
    # Each copy must be ignored in the worktree too, or the step's commit would take it.
    kept = set(_ignored(target, copied, timeout_s))
    for name in copied:
        if name not in kept:
            (target / name).unlink()
            skipped.append(f"{name}: not ignored in the worktree (would be committed)")
    return Copied(files=tuple(n for n in copied if n in kept), skipped=tuple(skipped))


def _ignored(root: Path, names: list[str], timeout_s: float) -> list[str]:
    """Those of ``names`` that git ignores at ``root`` (tracked files never are)."""
    if not names:
        return []
    done = git(
        "copy_ignored",
        root,
        "check-ignore",
        "-z",
        "--stdin",
        read_only=True,
        ok=(0, 1),
        stdin=b"".join(os.fsencode(n) + b"\0" for n in names),
        timeout_s=timeout_s,
    )
    return nul_fields(done)


def _copy_one(root: Path, target: Path, name: str) -> str | None:
    """Copy ``root/name`` to ``target/name``; why not, if it was not copied."""
    source = root / name
    destination = target / name
    if not _inside(root, source.parent) or not _inside(target, destination.parent, create=True):
        return "its folder is reached through a symlink"
    if os.path.lexists(destination):
        return "already in the worktree"
    try:
        if source.is_symlink():
            link = os.readlink(source)
            if os.path.isabs(link) or not Path(os.path.realpath(source)).is_relative_to(root):
                return "a symlink pointing out of the repository"
            os.symlink(link, destination)  # relative: it points into the worktree's copy
        elif source.is_file():
            shutil.copy2(source, destination, follow_symlinks=False)
        else:
            return "not a regular file"
    except OSError as exc:
        raise GitError(f"copy_ignored: cannot copy {name}: {exc.strerror}") from exc
    return None


def _inside(top: Path, folder: Path, *, create: bool = False) -> bool:
    """Whether ``folder`` is ``top`` or below it with no symlink on the way (made, if
    ``create``, one real folder at a time)."""
    try:
        relative = folder.relative_to(top)
    except ValueError:
        return False
    here = top
    for part in relative.parts:
        if part == "..":
            return False
        here = here / part
        if here.is_symlink():
            return False
        if not here.exists():
            if not create:
                return False
            here.mkdir()
        elif not here.is_dir():
            return False
    return True
