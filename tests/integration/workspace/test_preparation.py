"""A new worktree made ready: ignored files copied in, setup commands run."""

from __future__ import annotations

import os
import time
from pathlib import Path

from workspace_helpers import Steps, git, process_gone, wait_for_file, write

from directorate.actors import workspace as ws


def test_setup_commands_run_in_order_in_the_worktree(steps: Steps, tmp_path: Path) -> None:
    made = steps.worktree("a")
    result = ws.run_setup(
        made.path,
        [["sh", "-c", "pwd > where.txt"], ["sh", "-c", 'echo "$GREETING" >> where.txt']],
        env={**os.environ, "GREETING": "hello"},
        timeout_s=30,
    )
    assert result.ok
    assert [c.argv[0] for c in result.commands] == ["sh", "sh"]
    assert (made.path / "where.txt").read_text() == f"{made.path}\nhello\n"


def test_setup_stops_at_the_first_failure(steps: Steps) -> None:
    made = steps.worktree("a")
    result = ws.run_setup(
        made.path,
        [["sh", "-c", "echo installing; exit 3"], ["touch", "never"]],
        timeout_s=30,
    )
    assert not result.ok
    assert result.commands[0].completed.exit_code == 3
    assert "installing" in result.commands[0].completed.output
    assert result.skipped == (("touch", "never"),)
    assert not (made.path / "never").exists()


def test_a_missing_setup_executable_is_an_outcome(steps: Steps) -> None:
    made = steps.worktree("a")
    result = ws.run_setup(made.path, [["no-such-installer-xyz"]], timeout_s=30)
    assert not result.ok
    assert result.commands[0].completed.error is not None


def test_a_setup_command_that_hangs_is_killed_with_its_children(
    steps: Steps, tmp_path: Path
) -> None:
    made = steps.worktree("a")
    pid_file = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pid_file}; wait"
    start = time.monotonic()
    result = ws.run_setup(made.path, [["sh", "-c", script], ["true"]], timeout_s=0.5)
    assert time.monotonic() - start < 10
    assert result.commands[0].completed.timed_out
    assert result.skipped == (("true",),)
    assert process_gone(int(wait_for_file(pid_file)))


def test_setup_refuses_a_command_that_is_not_an_argv(steps: Steps) -> None:
    made = steps.worktree("a")
    for bad in ("echo hi", [], [1]):
        try:
            ws.run_setup(made.path, [bad], timeout_s=5)  # type: ignore[list-item]
        except ValueError as exc:
            assert "setup[0]" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_worktreeinclude_copies_ignored_files(
    steps: Steps, user_repo: Path, repo: ws.Repository
) -> None:
    write(user_repo / ".worktreeinclude", "# secrets the tests need\n.env\nconfig/*.local\n")
    write(user_repo / ".env", "TOKEN=x\n")
    write(user_repo / "sub" / ".env", "TOKEN=y\n")  # .env anywhere, as in .gitignore
    write(user_repo / "config" / "db.local", "local\n")
    git(user_repo, "add", ".worktreeinclude")
    git(user_repo, "commit", "-q", "-m", "include")
    (user_repo / ".gitignore").write_text(".env\n*.log\nnode_modules/\n*.local\n")
    git(user_repo, "commit", "-q", "-am", "ignore locals")
    write(user_repo / "debug.log", "ignored, not included\n")
    write(user_repo / "untracked.txt", "not ignored: the user's own work\n")
    made = ws.ensure_worktree(
        repo,
        steps.home / "wt",
        "directorate/1a2b3c4d-steps/a",
        git(user_repo, "rev-parse", "HEAD"),
    )
    copied = ws.copy_ignored(user_repo, made.path)
    assert sorted(copied.files) == [".env", "config/db.local", "sub/.env"]
    assert (made.path / "sub" / ".env").read_text() == "TOKEN=y\n"
    assert not (made.path / "debug.log").exists()
    assert not (made.path / "untracked.txt").exists()
    # Ignored there too: the step's commit will not take them.
    assert git(made.path, "status", "--porcelain") == ""


def test_globs_are_gitignore_patterns_too(steps: Steps, user_repo: Path) -> None:
    made = steps.worktree("a")
    write(user_repo / ".env", "TOKEN=x\n")
    write(user_repo / "node_modules" / "pkg" / "index.js", "module.exports = 1\n")
    write(user_repo / "debug.log", "log\n")
    copied = ws.copy_ignored(user_repo, made.path, ["node_modules/", "*.env", ".env"])
    assert sorted(copied.files) == [".env", "node_modules/pkg/index.js"]


def test_nothing_to_copy_without_patterns(steps: Steps, user_repo: Path) -> None:
    made = steps.worktree("a")
    write(user_repo / ".env", "TOKEN=x\n")
    assert ws.copy_ignored(user_repo, made.path) == ws.Copied(files=())


def test_tracked_and_existing_files_are_never_copied_over(steps: Steps, user_repo: Path) -> None:
    made = steps.worktree("a")
    (user_repo / "app.py").write_text("the user's uncommitted edit\n")
    write(made.path / ".env", "the worktree's own\n")
    write(user_repo / ".env", "TOKEN=x\n")
    copied = ws.copy_ignored(user_repo, made.path, ["app.py", ".env"])
    assert copied.files == ()
    assert copied.skipped == (".env: already in the worktree",)
    assert (made.path / "app.py").read_text() == "def greet():\n    return 'hello'\n"
    assert (made.path / ".env").read_text() == "the worktree's own\n"


def test_symlinks_out_of_the_repository_are_not_followed(
    steps: Steps, user_repo: Path, tmp_path: Path
) -> None:
    made = steps.worktree("a")
    outside = write(tmp_path / "outside" / "secret", "not the repository's\n")
    (user_repo / ".env").symlink_to(outside)
    (user_repo / "relative.env").symlink_to(Path("..") / "outside" / "secret")
    write(user_repo / "real.env", "A=1\n")
    (user_repo / "inside.env").symlink_to("real.env")
    (user_repo / ".gitignore").write_text("*.env\n.env\n")
    git(user_repo, "commit", "-q", "-am", "ignore env files")
    git(made.path, "merge", "-q", "main")  # the worktree ignores them too
    copied = ws.copy_ignored(user_repo, made.path, ["*.env", ".env"])
    assert sorted(copied.files) == ["inside.env", "real.env"]
    assert sorted(copied.skipped) == [
        ".env: a symlink pointing out of the repository",
        "relative.env: a symlink pointing out of the repository",
    ]
    assert os.readlink(made.path / "inside.env") == "real.env"
    assert (made.path / "inside.env").read_text() == "A=1\n"
    assert not os.path.lexists(made.path / ".env")


def test_a_copy_the_worktree_would_commit_is_taken_back(steps: Steps, user_repo: Path) -> None:
    made = steps.worktree("a")
    # Ignored only by an uncommitted rule: the worktree (at the commit) does not ignore it.
    (user_repo / ".gitignore").write_text(".env\n*.log\nnode_modules/\nsecrets.txt\n")
    write(user_repo / "secrets.txt", "s\n")
    copied = ws.copy_ignored(user_repo, made.path, ["secrets.txt"])
    assert copied.files == ()
    assert copied.skipped == ("secrets.txt: not ignored in the worktree (would be committed)",)
    assert not (made.path / "secrets.txt").exists()


def test_copy_does_not_write_through_a_symlinked_folder_of_the_worktree(
    steps: Steps, user_repo: Path, tmp_path: Path
) -> None:
    made = steps.worktree("a")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write(user_repo / "conf" / ".env", "A=1\n")
    (made.path / "conf").symlink_to(elsewhere)  # what an agent or a checkout could leave
    copied = ws.copy_ignored(user_repo, made.path, [".env"])
    assert copied.skipped == ("conf/.env: its folder is reached through a symlink",)
    assert list(elsewhere.iterdir()) == []
