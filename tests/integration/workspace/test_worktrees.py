"""Step worktrees: made outside the repository, reused, re-made from their branch, removed."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest
from conftest import DIRECTIVE, Steps
from workspace_helpers import git, write

from directorate.actors import workspace as ws


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


def test_a_worktree_left_locked_by_a_killed_add_is_recovered(
    steps: Steps, repo: ws.Repository
) -> None:
    """`git worktree add` locks the worktree while making it; killed half-way, the lock
    stays and `git worktree prune` would never remove it."""
    first = steps.worktree("a")
    git(repo.toplevel, "worktree", "lock", "--reason", "initializing", str(first.path))
    assert steps.worktree("a").state is ws.WorktreeState.REUSED
    assert not locked(repo)
    git(repo.toplevel, "worktree", "lock", "--reason", "initializing", str(first.path))
    shutil.rmtree(first.path)
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
