"""git_changed_files and the bounded diff, in real repositories."""

from __future__ import annotations

from pathlib import Path

import pytest
from verifier_helpers import git

from directorate.verifiers import git_changed_files
from directorate.verifiers.gitfiles import git_diff


@pytest.fixture
def changed(repo: Path) -> tuple[Path, str]:
    """The repository, its first commit as the base, and one change of each kind after it."""
    base = git(repo, "rev-parse", "HEAD")
    (repo / "a.txt").write_text("committed\n")
    git(repo, "commit", "-q", "-am", "second")
    (repo / "b.txt").write_text("staged\n")
    git(repo, "add", "b.txt")
    (repo / "c.txt").write_text("unstaged\n")
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "new dir").mkdir()
    (repo / "new dir" / "d é.txt").write_text("untracked\n")
    (repo / "e.log").write_text("ignored\n")
    return repo, base


def test_since_base_covers_every_kind_of_change(changed: tuple[Path, str]) -> None:
    repo, base = changed
    assert git_changed_files(repo, base) == [
        ".gitignore",
        "a.txt",
        "b.txt",
        "c.txt",
        "new dir/d é.txt",
    ]


def test_without_base_is_against_head(changed: tuple[Path, str]) -> None:
    repo, _ = changed
    assert git_changed_files(repo, None) == [".gitignore", "b.txt", "c.txt", "new dir/d é.txt"]


def test_unknown_base_falls_back_to_head(changed: tuple[Path, str]) -> None:
    repo, _ = changed
    assert git_changed_files(repo, "no-such-ref") == git_changed_files(repo, None)
    assert git_changed_files(repo, "--output=x") == git_changed_files(repo, None)
    assert not (repo / "x").exists()


def test_deleted_file_is_a_change(repo: Path) -> None:
    (repo / "a.txt").unlink()
    assert git_changed_files(repo, None) == ["a.txt"]


def test_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "staged.txt").write_text("x")
    git(tmp_path, "add", "staged.txt")
    (tmp_path / "loose.txt").write_text("y")
    assert git_changed_files(tmp_path, None) == ["loose.txt", "staged.txt"]


def test_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    assert git_changed_files(tmp_path, None) == []
    assert git_changed_files(tmp_path / "missing", "HEAD") == []
    assert git_changed_files(None, None) == []


def test_diff_shows_changes_and_untracked_files_bounded(changed: tuple[Path, str]) -> None:
    repo, base = changed
    diff = git_diff(repo, base, 10_000)
    assert "+committed" in diff and "+staged" in diff and "+unstaged" in diff
    assert "new dir/d é.txt (new, untracked)" in diff and "untracked" in diff
    assert "ignored" not in diff
    (repo / "big.txt").write_text("z" * 50_000)
    short = git_diff(repo, base, 1_000)
    assert len(short) < 1_100 and "diff cut at 1000 characters" in short
    assert git_diff(repo.parent, None, 1_000) == ""
