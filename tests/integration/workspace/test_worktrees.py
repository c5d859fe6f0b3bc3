"""Step worktrees: made outside the repository, reused, re-made from their branch, removed."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest
from workspace_helpers import DIRECTIVE, Steps, git, make_repository, write

from directorate.actors import workspace as ws
from directorate.actors.workspace import worktrees


def test_a_new_worktree_on_a_new_branch(
    repo: ws.Repository, user_repo: Path, home: Path, result: ws.Branch
) -> None:
    path = ws.worktree_path(home, DIRECTIVE, "write-docs")
    branch = ws.branch_name(DIRECTIVE, "write-docs")
    made = ws.ensure_worktree(repo, path, branch, result.sha)
    assert made == ws.Worktree(
        path=path.resolve(),
        branch=branch,
        head=result.sha,
        state=ws.WorktreeState.CREATED,
        branch_created=True,
    )
    assert (path / "app.py").read_text() == "def greet():\n    return 'hello'\n"
    assert git(path, "symbolic-ref", "--short", "HEAD") == branch
    # The user's working tree and branch are as they were.
    assert git(user_repo, "symbolic-ref", "--short", "HEAD") == "main"
    assert git(user_repo, "status", "--porcelain") == ""


def test_an_existing_worktree_is_reused_as_it_is(steps: Steps, repo: ws.Repository) -> None:
    first = steps.worktree("a")
    write(first.path / "half-done.txt", "the previous attempt\n")
    again = steps.worktree("a")
    assert again.state is ws.WorktreeState.REUSED
    assert again.path == first.path and again.head == first.head
    assert (first.path / "half-done.txt").read_text() == "the previous attempt\n"


def test_a_deleted_worktree_is_made_again_from_its_branch(
    steps: Steps, repo: ws.Repository
) -> None:
    first = steps.worktree("a")
    write(first.path / "work.txt", "committed work\n")
    step_commit = ws.commit_all(first.path, "step a", base=first.head)
    shutil.rmtree(first.path)  # lost: a disk cleaned, a crash during removal
    again = steps.worktree("a")
    assert again.state is ws.WorktreeState.RECREATED
    assert not again.branch_created
    assert again.head == step_commit.head
    assert (again.path / "work.txt").read_text() == "committed work\n"
    assert not list((repo.common_dir / "worktrees").glob("*/locked"))


def test_a_worktree_removed_and_pruned_is_made_from_its_branch(steps: Steps) -> None:
    first = steps.worktree("a")
    write(first.path / "work.txt", "committed work\n")
    ws.commit_all(first.path, "step a", base=first.head)
    ws.remove_worktree(steps.repo, first.path)
    again = steps.worktree("a")
    assert again.state is ws.WorktreeState.CREATED and not again.branch_created
    assert (again.path / "work.txt").read_text() == "committed work\n"


def locked(repo: ws.Repository) -> list[str]:
    listed = git(repo.toplevel, "worktree", "list", "--porcelain").splitlines()
    return [line for line in listed if line.startswith("locked")]


def test_a_worktree_half_made_by_a_killed_add_is_made_again(
    steps: Steps, repo: ws.Repository
) -> None:
    """`git worktree add` locks the worktree "initializing" while it checks files out;
    killed half-way (the engine with it), the lock stays, some files are missing, and
    `git worktree prune` would never remove it. Reusing it would make the missing files
    look deleted by the agent."""
    first = steps.worktree("a")
    git(repo.toplevel, "worktree", "lock", "--reason", "initializing", str(first.path))
    (first.path / "app.py").unlink()  # not checked out yet when the add was killed
    again = steps.worktree("a")
    assert again.state is ws.WorktreeState.RECREATED
    assert (again.path / "app.py").exists()
    assert git(again.path, "status", "--porcelain") == ""
    assert not locked(repo)


def admin_folder(
    repo: ws.Repository, name: str, locked: str | None, gitdir: str | None = None
) -> Path:
    """What `git worktree add` leaves when killed between making its administrative
    folder and writing the folder's `gitdir`: git lists no worktree for it. Killed
    mid-write, the files are there but empty or cut short."""
    folder = repo.common_dir / "worktrees" / name
    folder.mkdir(parents=True)
    if locked is not None:
        (folder / "locked").write_text(locked)
    if gitdir is not None:
        (folder / "gitdir").write_text(gitdir)
    return folder


def test_an_add_killed_before_it_wrote_gitdir_is_forgotten(
    steps: Steps, repo: ws.Repository
) -> None:
    early = admin_folder(repo, "a", locked="initializing")
    earlier = admin_folder(repo, "a1", locked=None)
    cut_short = admin_folder(repo, "a3", locked="")
    empty_gitdir = admin_folder(repo, "a4", locked="initializing\n", gitdir="")
    not_ours = admin_folder(repo, "ab", locked="initializing")
    someone_elses = admin_folder(repo, "a2", locked="kept by hand")
    made = steps.worktree("a")
    assert made.state is ws.WorktreeState.CREATED
    # The killed adds' folders went, so the new worktree's took the name again.
    assert Path(git(made.path, "rev-parse", "--absolute-git-dir")) == early
    assert (early / "gitdir").exists() and not (early / "locked").exists()
    assert not earlier.exists() and not cut_short.exists() and not empty_gitdir.exists()
    assert not_ours.exists() and someone_elses.exists()
    assert git(made.path, "status", "--porcelain") == ""


def test_an_add_killed_while_writing_commondir_is_made_again(
    steps: Steps, repo: ws.Repository
) -> None:
    """Killed mid-write, `commondir` is empty, and every `git worktree` command of the
    repository fails ("failed to read .git/worktrees/a/commondir")."""
    first = steps.worktree("a")
    admin = Path(git(first.path, "rev-parse", "--absolute-git-dir"))
    git(repo.toplevel, "worktree", "lock", "--reason", "initializing", str(first.path))
    (admin / "commondir").write_text("")
    again = steps.worktree("a")
    assert again.state is ws.WorktreeState.RECREATED
    assert git(again.path, "status", "--porcelain") == ""
    assert not locked(repo)


def test_a_worktree_locked_for_another_reason_is_reused_and_left_locked(
    steps: Steps, repo: ws.Repository
) -> None:
    first = steps.worktree("a")
    git(repo.toplevel, "worktree", "lock", "--reason", "on a removable disk", str(first.path))
    assert steps.worktree("a").state is ws.WorktreeState.REUSED
    assert locked(repo) == ["locked on a removable disk"]
    shutil.rmtree(first.path)  # and when its folder is gone, made again all the same
    assert steps.worktree("a").state is ws.WorktreeState.RECREATED
    assert not locked(repo)


def test_a_worktree_inside_the_repository_is_refused(
    repo: ws.Repository, user_repo: Path, result: ws.Branch
) -> None:
    with pytest.raises(ws.GitError, match="worktrees live outside the user's repository"):
        ws.ensure_worktree(repo, user_repo / "wt", ws.branch_name(DIRECTIVE, "a"), result.sha)
    assert git(user_repo, "branch", "--list", "directorate/*-steps/*") == ""


def test_a_folder_in_the_way_is_not_touched(
    repo: ws.Repository, home: Path, result: ws.Branch
) -> None:
    path = ws.worktree_path(home, DIRECTIVE, "a")
    write(path / "precious.txt", "not ours\n")
    with pytest.raises(ws.GitError, match="exists and is not a worktree"):
        ws.ensure_worktree(repo, path, ws.branch_name(DIRECTIVE, "a"), result.sha)
    assert (path / "precious.txt").read_text() == "not ours\n"


def test_a_worktree_on_another_branch_is_an_error(steps: Steps) -> None:
    made = steps.worktree("a")
    git(made.path, "switch", "-q", "-c", "elsewhere")
    with pytest.raises(ws.GitError, match="has branch elsewhere checked out"):
        steps.worktree("a")
    ws.discard_uncommitted(made.path, branch=made.branch)
    assert steps.worktree("a").state is ws.WorktreeState.REUSED


def test_a_branch_checked_out_elsewhere_is_an_error(
    repo: ws.Repository, home: Path, result: ws.Branch
) -> None:
    with pytest.raises(ws.GitError, match="ensure_worktree: git worktree failed"):
        ws.ensure_worktree(repo, home / "wt", "main", result.sha)
    assert not (home / "wt").exists()
    assert len(git(repo.toplevel, "worktree", "list").splitlines()) == 1


def test_remove_worktree_keeps_the_branch(steps: Steps, repo: ws.Repository) -> None:
    made = steps.worktree("a")
    write(made.path / "uncommitted.txt", "lost on purpose\n")
    assert ws.remove_worktree(repo, made.path)
    assert not made.path.exists()
    assert git(repo.toplevel, "rev-parse", made.branch) == made.head
    assert len(git(repo.toplevel, "worktree", "list").splitlines()) == 1
    assert not ws.remove_worktree(repo, made.path)  # again: nothing there


def test_remove_a_locked_worktree_and_one_whose_folder_is_gone(
    steps: Steps, repo: ws.Repository
) -> None:
    a, b = steps.worktree("a"), steps.worktree("b")
    git(repo.toplevel, "worktree", "lock", str(a.path))
    shutil.rmtree(b.path)
    assert ws.remove_worktree(repo, b.path)
    assert ws.remove_worktree(repo, a.path)
    assert not a.path.exists()
    assert len(git(repo.toplevel, "worktree", "list").splitlines()) == 1


def test_prune_forgets_deleted_worktrees(steps: Steps, repo: ws.Repository) -> None:
    made = steps.worktree("a")
    shutil.rmtree(made.path)
    ws.prune(repo)
    assert git(repo.toplevel, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_no_lock_file_is_left_held(steps: Steps, repo: ws.Repository) -> None:
    steps.worktree("a")
    lock = repo.common_dir / "directorate-workspace.lock"
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise if still held
    finally:
        os.close(fd)


def test_a_worktree_that_lost_its_git_file_never_reaches_a_repository_above_it(
    user_repo: Path, repo: ws.Repository, tmp_path: Path, result: ws.Branch
) -> None:
    """Worktrees under a home folder that is itself in git (dotfiles): an agent that
    removes its worktree's .git must not make the engine commit or clean up there."""
    outer = tmp_path / "outer-home"
    outer.mkdir()
    git(outer, "init", "-q")
    write(outer / ".bashrc", "# the user's dotfiles\n")
    git(outer, "add", ".bashrc")
    git(outer, "commit", "-q", "-m", "dotfiles")
    path = ws.worktree_path(outer / "directorate", DIRECTIVE, "a")
    made = ws.ensure_worktree(repo, path, ws.branch_name(DIRECTIVE, "a"), result.sha)
    (made.path / ".git").unlink()
    write(made.path / "work.txt", "uncommitted\n")
    for operation in (
        lambda: ws.commit_all(made.path, "a", base=result.sha),
        lambda: ws.discard_uncommitted(made.path),
        lambda: ws.update_from(made.path, result.name),
    ):
        with pytest.raises(ws.GitError, match="is not a git worktree"):
            operation()
    assert git(outer, "log", "--format=%s") == "dotfiles"
    assert git(outer, "status", "--porcelain") == "?? directorate/"
    # Recovery: registered there, so the folder is this worktree's; made again.
    again = ws.ensure_worktree(repo, path, made.branch, result.sha)
    assert again.state is ws.WorktreeState.RECREATED
    assert not (again.path / "work.txt").exists()
    assert git(again.path, "rev-parse", "--show-toplevel") == str(again.path)


@pytest.fixture(scope="module")
def big_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 files: enough for `worktree add` to be killed half-way at some deadlines."""
    files = {f"d{i % 20}/f{i}.txt": f"{i}\n" * 20 for i in range(1500)}
    return make_repository(tmp_path_factory.mktemp("big") / "big", files)


@pytest.mark.parametrize("timeout_s", [0.005, 0.05, 0.2])
def test_a_killed_worktree_add_leaves_nothing_behind(
    big_repo: Path, home: Path, timeout_s: float
) -> None:
    repo = ws.find_repository(big_repo)
    assert repo is not None
    step = f"a{int(timeout_s * 1000)}"
    branch = ws.branch_name(DIRECTIVE, step)
    path = ws.worktree_path(home, DIRECTIVE, step)
    head = git(big_repo, "rev-parse", "HEAD")
    ws.create_branch(repo, branch, head)
    try:
        worktrees._add(repo, path, branch, timeout_s)
    except ws.GitError as exc:
        assert "timed out" in str(exc)
        assert not path.exists()
        assert git(big_repo, "worktree", "list", "--porcelain").count("worktree ") == 1
        assert not list((repo.common_dir / "worktrees").glob("*"))
    # Either way, the next attempt gets a whole worktree.
    made = ws.ensure_worktree(repo, path, branch, head)
    assert len(git(made.path, "ls-files").splitlines()) == 1500
    assert git(made.path, "status", "--porcelain") == ""
    ws.remove_worktree(repo, made.path)
