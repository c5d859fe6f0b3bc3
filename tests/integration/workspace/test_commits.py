"""What an agent left: committed; what a killed attempt left: discarded; diffs of both."""

from __future__ import annotations

from pathlib import Path

import pytest
from workspace_helpers import Steps, files_at, git, show, write

from directorate.actors import workspace as ws


def test_everything_left_uncommitted_is_committed(steps: Steps) -> None:
    made = steps.worktree("a")
    write(made.path / "new" / "module.py", "X = 1\nY = 2\n")
    (made.path / "app.py").write_text("def greet():\n    return 'hi'\n")
    (made.path / "lib" / "util.py").unlink()
    write(made.path / "build.log", "ignored: stays out\n")
    done = ws.commit_all(made.path, "step a, attempt 1", base=made.head)
    assert done.committed and not done.completed_merge
    assert done.stat == ws.DiffStat(files=3, insertions=3, deletions=2)
    assert files_at(made.path, done.head) == [".gitignore", "README.md", "app.py", "new/module.py"]
    assert git(made.path, "log", "-1", "--format=%an <%ae>|%s") == (
        "directorate <directorate@localhost>|step a, attempt 1"
    )
    assert git(made.path, "rev-parse", made.branch) == done.head
    assert git(made.path, "status", "--porcelain") == ""
    assert (made.path / "build.log").exists()


def test_the_agents_own_commit_and_its_uncommitted_edits_both_land(steps: Steps) -> None:
    made = steps.worktree("a")
    write(made.path / "committed.txt", "by the agent\n")
    git(made.path, "add", "committed.txt")
    git(made.path, "commit", "-q", "-m", "the agent's own commit")
    own = git(made.path, "rev-parse", "HEAD")
    write(made.path / "left.txt", "left uncommitted\n")
    done = ws.commit_all(made.path, "step a", base=made.head, branch=made.branch)
    assert done.committed
    assert git(made.path, "rev-parse", f"{done.head}^") == own
    assert git(made.path, "log", "--format=%s", f"{made.head}..{done.head}").splitlines() == [
        "step a",
        "the agent's own commit",
    ]
    assert show(made.path, done.head, "committed.txt") == "by the agent\n"
    assert show(made.path, done.head, "left.txt") == "left uncommitted\n"
    assert done.stat == ws.DiffStat(files=2, insertions=2, deletions=0)


def test_nothing_left_is_no_commit(steps: Steps) -> None:
    made = steps.worktree("a")
    done = ws.commit_all(made.path, "step a", base=made.head)
    assert done == ws.StepCommit(
        head=made.head,
        committed=False,
        completed_merge=False,
        stat=ws.DiffStat(files=0, insertions=0, deletions=0),
    )
    git(made.path, "commit", "-q", "--allow-empty", "-m", "agent")
    again = ws.commit_all(made.path, "step a", base=made.head)
    assert not again.committed and again.head != made.head


def test_binary_files_count_as_files(steps: Steps) -> None:
    made = steps.worktree("a")
    (made.path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0binary")
    git(made.path, "mv", "README.md", "README.txt")  # a rename: one file, no lines
    done = ws.commit_all(made.path, "step a", base=made.head)
    assert done.stat == ws.DiffStat(files=2, insertions=0, deletions=0)


def test_commit_on_another_branch_is_refused(steps: Steps) -> None:
    made = steps.worktree("a")
    git(made.path, "switch", "-q", "--detach")
    write(made.path / "x.txt", "x\n")
    with pytest.raises(ws.GitError, match="has a detached HEAD checked out, not"):
        ws.commit_all(made.path, "step a", base=made.head, branch=made.branch)


def test_commit_all_outside_a_worktree(tmp_path: Path) -> None:
    with pytest.raises(ws.GitError, match="is not a git worktree"):
        ws.commit_all(tmp_path, "x", base="HEAD")


def test_discard_after_a_half_done_attempt(steps: Steps) -> None:
    made = steps.worktree("a")
    write(made.path / "kept.txt", "committed by the first attempt\n")
    first = ws.commit_all(made.path, "attempt 1", base=made.head)
    # The second attempt is killed half-way: edits, a staged file, new files, a folder,
    # an ignored dependency folder, and the index.lock of a git it had running.
    (made.path / "app.py").write_text("half-written\n")
    write(made.path / "staged.txt", "staged\n")
    git(made.path, "add", "staged.txt")
    write(made.path / "scratch" / "tmp.txt", "untracked\n")
    (made.path / "kept.txt").unlink()
    write(made.path / "node_modules" / "dep" / "index.js", "installed by setup\n")
    gitdir = Path(git(made.path, "rev-parse", "--absolute-git-dir"))
    (gitdir / "index.lock").write_text("")
    gone = ws.discard_uncommitted(made.path)
    assert gone.head == first.head
    assert gone.aborted is None
    assert gone.removed == ("scratch/",)  # staged.txt went with the reset
    assert not (made.path / "staged.txt").exists()
    assert git(made.path, "status", "--porcelain") == ""
    assert (made.path / "app.py").read_text() == "def greet():\n    return 'hello'\n"
    assert (made.path / "kept.txt").read_text() == "committed by the first attempt\n"
    assert (made.path / "node_modules" / "dep" / "index.js").exists()
    assert not (gitdir / "index.lock").exists()


def test_discard_abandons_a_merge_in_progress(steps: Steps, repo: ws.Repository) -> None:
    a, b = steps.worktree("a"), steps.worktree("b")
    (a.path / "app.py").write_text("A\n")
    ws.commit_all(a.path, "a", base=a.head)
    (b.path / "app.py").write_text("B\n")
    b_commit = ws.commit_all(b.path, "b", base=b.head)
    git(b.path, "merge", a.branch, check=False)  # the agent started a merge and was killed
    assert "<<<<<<<" in (b.path / "app.py").read_text()
    gone = ws.discard_uncommitted(b.path)
    assert gone.aborted == "merge"
    assert gone.head == b_commit.head
    assert (b.path / "app.py").read_text() == "B\n"
    assert not (Path(git(b.path, "rev-parse", "--absolute-git-dir")) / "MERGE_HEAD").exists()


def test_discard_abandons_a_rebase_and_returns_to_the_branch(steps: Steps) -> None:
    a, b = steps.worktree("a"), steps.worktree("b")
    (a.path / "app.py").write_text("A\n")
    ws.commit_all(a.path, "a", base=a.head)
    (b.path / "app.py").write_text("B\n")
    b_commit = ws.commit_all(b.path, "b", base=b.head)
    git(b.path, "rebase", a.branch, check=False)  # stops on the conflict, HEAD detached
    assert git(b.path, "symbolic-ref", "-q", "HEAD", check=False) == ""
    gone = ws.discard_uncommitted(b.path, branch=b.branch)
    assert gone.aborted == "rebase"
    assert git(b.path, "symbolic-ref", "--short", "HEAD") == b.branch
    assert gone.head == b_commit.head
    assert git(b.path, "status", "--porcelain") == ""


def test_discard_abandons_a_cherry_pick(steps: Steps) -> None:
    a, b = steps.worktree("a"), steps.worktree("b")
    (a.path / "app.py").write_text("A\n")
    a_commit = ws.commit_all(a.path, "a", base=a.head)
    (b.path / "app.py").write_text("B\n")
    ws.commit_all(b.path, "b", base=b.head)
    git(b.path, "cherry-pick", a_commit.head, check=False)
    gone = ws.discard_uncommitted(b.path)
    assert gone.aborted == "cherry-pick"
    assert git(b.path, "status", "--porcelain") == ""
    write(b.path / "next.txt", "the next attempt commits normally\n")
    assert ws.commit_all(b.path, "b, attempt 2", base=b.head).committed


def test_discard_switches_back_to_the_step_branch(steps: Steps) -> None:
    made = steps.worktree("a")
    git(made.path, "switch", "-q", "-c", "agent-branch")
    write(made.path / "x.txt", "x\n")
    ws.discard_uncommitted(made.path, branch=made.branch)
    assert git(made.path, "symbolic-ref", "--short", "HEAD") == made.branch
    assert not (made.path / "x.txt").exists()


def test_diff_and_diff_stat(steps: Steps, repo: ws.Repository) -> None:
    made = steps.worktree("a")
    (made.path / "app.py").write_text("def greet():\n    return 'hi'\n")
    done = ws.commit_all(made.path, "a", base=made.head)
    patch = ws.diff(repo, made.head, done.head)
    assert "-    return 'hello'\n+    return 'hi'\n" in patch
    assert ws.diff_stat(repo, made.head, made.branch) == ws.DiffStat(
        files=1, insertions=1, deletions=1
    )
    cut = ws.diff(repo, made.head, done.head, max_chars=40)
    assert cut.startswith(patch[:40]) and "[... diff cut at 40 characters ...]" in cut


def test_diff_is_what_head_did_since_it_forked(
    steps: Steps, repo: ws.Repository, user_repo: Path
) -> None:
    """base...head: commits on the base after the fork do not show as reverted."""
    made = steps.worktree("a")
    (made.path / "app.py").write_text("step\n")
    done = ws.commit_all(made.path, "a", base=made.head)
    write(user_repo / "later.txt", "the user went on working\n")
    git(user_repo, "add", "later.txt")
    git(user_repo, "commit", "-q", "-m", "later")
    assert "later.txt" not in ws.diff(repo, "main", done.head)
    assert ws.diff_stat(repo, "main", done.head).files == 1


def test_diff_of_unknown_commits(repo: ws.Repository) -> None:
    with pytest.raises(ws.GitError, match="'no-such' is not a commit"):
        ws.diff(repo, "no-such", "HEAD")
