"""Steps merged into the result branch without a worktree; the result merged into a step."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from workspace_helpers import DIRECTIVE, Steps, files_at, git, show, write

from directorate.actors import workspace as ws
from directorate.actors.workspace import merging


def user_state(user_repo: Path) -> tuple[str, str, str]:
    return (
        git(user_repo, "rev-parse", "HEAD"),
        git(user_repo, "symbolic-ref", "HEAD"),
        git(user_repo, "status", "--porcelain", "--untracked-files=all"),
    )


def test_two_parallel_steps_merged_in_order(
    steps: Steps, repo: ws.Repository, user_repo: Path, result: ws.Branch
) -> None:
    write(user_repo / "notes.txt", "the user's own uncommitted work\n")
    before = user_state(user_repo)
    a, b = steps.worktree("a"), steps.worktree("b")
    write(a.path / "a.txt", "from a\n")
    write(b.path / "b.txt", "from b\n")
    assert not (a.path / "b.txt").exists() and not (b.path / "a.txt").exists()
    a_done = ws.commit_all(a.path, "step a", base=a.head)
    b_done = ws.commit_all(b.path, "step b", base=b.head)
    assert not (a.path / "b.txt").exists() and not (b.path / "a.txt").exists()

    first = ws.merge_step(repo, result.name, a.branch, "merge step a")
    assert isinstance(first, ws.Merged) and first.kind is ws.MergeKind.MERGE_COMMIT
    second = ws.merge_step(repo, result.name, b.branch, "merge step b")
    assert isinstance(second, ws.Merged) and second.kind is ws.MergeKind.MERGE_COMMIT

    assert git(user_repo, "rev-parse", result.name) == second.sha
    assert {"a.txt", "b.txt"} <= set(files_at(user_repo, result.name))
    # One merge commit per step on the first-parent line, each with both parents.
    assert git(user_repo, "log", "--first-parent", "--format=%s", result.name).splitlines() == [
        "merge step b",
        "merge step a",
        "initial",
    ]
    assert git(user_repo, "rev-parse", f"{second.sha}^1", f"{second.sha}^2").split() == [
        first.sha,
        b_done.head,
    ]
    assert git(user_repo, "rev-parse", f"{first.sha}^2") == a_done.head
    assert git(user_repo, "log", "-1", "--format=%an <%ae>", second.sha) == (
        "directorate <directorate@localhost>"
    )
    # The user's branch, HEAD and working tree are exactly as they were.
    assert user_state(user_repo) == before
    assert not (user_repo / "a.txt").exists() and not (user_repo / "b.txt").exists()

    # A step that depends on both starts from the result branch and sees both.
    joined = steps.worktree("join")
    assert (joined.path / "a.txt").exists() and (joined.path / "b.txt").exists()


def test_merging_again_changes_nothing(
    steps: Steps, repo: ws.Repository, result: ws.Branch
) -> None:
    a = steps.worktree("a")
    write(a.path / "a.txt", "a\n")
    ws.commit_all(a.path, "a", base=a.head)
    merged = ws.merge_step(repo, result.name, a.branch, "merge a")
    again = ws.merge_step(repo, result.name, a.branch, "merge a")
    assert isinstance(merged, ws.Merged)
    assert again == ws.Merged(sha=merged.sha, kind=ws.MergeKind.UP_TO_DATE)


def test_a_conflict_goes_back_to_the_step_and_is_resolved(
    steps: Steps, repo: ws.Repository, user_repo: Path, result: ws.Branch
) -> None:
    before = user_state(user_repo)
    a, b = steps.worktree("a"), steps.worktree("b")
    (a.path / "app.py").write_text("def greet():\n    return 'hello from a'\n")
    (b.path / "app.py").write_text("def greet():\n    return 'hello from b'\n")
    ws.commit_all(a.path, "step a", base=a.head)
    ws.commit_all(b.path, "step b", base=b.head)
    merged_a = ws.merge_step(repo, result.name, a.branch, "merge a")
    assert isinstance(merged_a, ws.Merged)

    conflict = ws.merge_step(repo, result.name, b.branch, "merge b")
    assert isinstance(conflict, ws.Conflict)
    assert conflict.paths == ("app.py",)
    [hunk] = conflict.files[0].hunks
    assert hunk.line == 1
    assert hunk.text == (
        "def greet():\n"
        f"<<<<<<< {result.name}\n"
        "    return 'hello from a'\n"
        "=======\n"
        "    return 'hello from b'\n"
        f">>>>>>> {b.branch}"
    )
    assert conflict.files[0].messages == ("CONFLICT (content): Merge conflict in app.py",)
    assert "hello from a" in conflict.quote() and "### app.py" in conflict.quote()
    assert git(user_repo, "rev-parse", result.name) == merged_a.sha  # unchanged

    # The step's worktree is brought up to the result: the markers are the agent's to resolve.
    brought = ws.update_from(b.path, result.name)
    assert isinstance(brought, ws.Conflict)
    assert brought.paths == ("app.py",)
    assert "hello from a" in brought.files[0].hunks[0].text
    text = (b.path / "app.py").read_text()
    assert "<<<<<<< HEAD" in text and "'hello from a'" in text and "'hello from b'" in text

    (b.path / "app.py").write_text("def greet():\n    return 'hello from a and b'\n")
    resolved = ws.commit_all(b.path, "step b, attempt 2", base=b.head, branch=b.branch)
    assert resolved.committed and resolved.completed_merge and resolved.conflict_markers == ()
    assert git(user_repo, "rev-parse", f"{resolved.head}^2") == merged_a.sha

    final = ws.merge_step(repo, result.name, b.branch, "merge b")
    assert isinstance(final, ws.Merged) and final.kind is ws.MergeKind.MERGE_COMMIT
    assert show(user_repo, result.name, "app.py") == (
        "def greet():\n    return 'hello from a and b'\n"
    )
    assert user_state(user_repo) == before


def test_markers_left_in_a_completed_merge_are_reported(
    steps: Steps, repo: ws.Repository, result: ws.Branch
) -> None:
    a, b = steps.worktree("a"), steps.worktree("b")
    (a.path / "app.py").write_text("A\n")
    (b.path / "app.py").write_text("B\n")
    ws.commit_all(a.path, "a", base=a.head)
    ws.commit_all(b.path, "b", base=b.head)
    ws.merge_step(repo, result.name, a.branch, "merge a")
    assert isinstance(ws.update_from(b.path, result.name), ws.Conflict)
    write(b.path / "other.txt", "the agent did something else and left the markers\n")
    done = ws.commit_all(b.path, "b, attempt 2", base=b.head)
    assert done.completed_merge
    assert done.conflict_markers == ("app.py",)


def test_a_conflict_quote_is_bounded(steps: Steps, repo: ws.Repository, result: ws.Branch) -> None:
    a, b = steps.worktree("a"), steps.worktree("b")
    for index in range(25):
        write(a.path / f"f{index:02}.txt", "".join(f"a{i}\n" for i in range(300)))
        write(b.path / f"f{index:02}.txt", "".join(f"b{i}\n" for i in range(300)))
    ws.commit_all(a.path, "a", base=a.head)
    ws.commit_all(b.path, "b", base=b.head)
    ws.merge_step(repo, result.name, a.branch, "merge a")
    conflict = ws.merge_step(repo, result.name, b.branch, "merge b")
    assert isinstance(conflict, ws.Conflict)
    assert len(conflict.files) == merging.MAX_CONFLICT_FILES and conflict.files_omitted == 5
    first = conflict.files[0]
    shown = sum(len(h.text.splitlines()) for h in first.hunks)
    assert shown == merging.MAX_CONFLICT_LINES
    assert first.lines_omitted == 603 - merging.MAX_CONFLICT_LINES  # 300 + 300 + 3 markers
    assert "[... and 5 more conflicted files ...]" in conflict.quote()


def test_modify_delete_and_binary_conflicts(
    steps: Steps, repo: ws.Repository, result: ws.Branch
) -> None:
    a, b = steps.worktree("a"), steps.worktree("b")
    (a.path / "lib" / "util.py").unlink()
    (b.path / "lib" / "util.py").write_text("VALUE = 2\n")
    (a.path / "logo.bin").write_bytes(b"\0a")
    (b.path / "logo.bin").write_bytes(b"\0b")
    ws.commit_all(a.path, "a", base=a.head)
    ws.commit_all(b.path, "b", base=b.head)
    ws.merge_step(repo, result.name, a.branch, "merge a")
    conflict = ws.merge_step(repo, result.name, b.branch, "merge b")
    assert isinstance(conflict, ws.Conflict)
    by_path = {f.path: f for f in conflict.files}
    assert set(by_path) == {"lib/util.py", "logo.bin"}
    assert by_path["lib/util.py"].hunks == ()
    assert "CONFLICT (modify/delete)" in by_path["lib/util.py"].messages[0]
    assert by_path["logo.bin"].hunks == ()
    assert "binary file: no conflict markers" in by_path["logo.bin"].messages


def test_merge_into_a_missing_branch(steps: Steps, repo: ws.Repository) -> None:
    a = steps.worktree("a")
    with pytest.raises(ws.GitError, match="merge_step: no branch directorate/ffffffff"):
        ws.merge_step(repo, ws.branch_name("ffffffff"), a.branch, "m")


def test_two_threads_merging_into_one_result_both_land(
    repo: ws.Repository, home: Path, result: ws.Branch
) -> None:
    names = [f"s{i}" for i in range(8)]
    for name in names:
        made = ws.ensure_worktree(
            repo,
            ws.worktree_path(home, DIRECTIVE, name),
            ws.branch_name(DIRECTIVE, name),
            result.sha,
        )
        write(made.path / f"{name}.txt", f"{name}\n")
        ws.commit_all(made.path, name, base=result.sha)
    start = threading.Barrier(2)
    outcomes: list[object] = []
    errors: list[BaseException] = []

    def merge(mine: list[str]) -> None:
        try:
            start.wait()
            for name in mine:
                outcomes.append(
                    ws.merge_step(repo, result.name, ws.branch_name(DIRECTIVE, name), name)
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=merge, args=(names[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert all(isinstance(o, ws.Merged) and o.kind is ws.MergeKind.MERGE_COMMIT for o in outcomes)
    landed = files_at(repo.toplevel, result.name)
    assert all(f"{name}.txt" in landed for name in names)
    assert (
        len(git(repo.toplevel, "log", "--first-parent", "--format=%s", result.name).splitlines())
        == len(names) + 1
    )


def test_compare_and_swap_detects_a_moved_branch(
    steps: Steps, repo: ws.Repository, result: ws.Branch
) -> None:
    a = steps.worktree("a")
    write(a.path / "a.txt", "a\n")
    done = ws.commit_all(a.path, "a", base=a.head)
    git(repo.toplevel, "branch", "-f", "moved", done.head)
    # Expecting the branch where it no longer is: refused, and it is not moved.
    assert not merging._compare_and_swap(repo, "moved", result.sha, "0" * 39 + "1", "test", "test")
    assert git(repo.toplevel, "rev-parse", "moved") == done.head
    assert merging._compare_and_swap(repo, "moved", result.sha, done.head, "test", "test")
    assert git(repo.toplevel, "rev-parse", "moved") == result.sha


def test_update_from_fast_forwards_a_step_without_commits(
    steps: Steps, repo: ws.Repository, result: ws.Branch
) -> None:
    a, b = steps.worktree("a"), steps.worktree("b")
    write(a.path / "a.txt", "a\n")
    ws.commit_all(a.path, "a", base=a.head)
    merged = ws.merge_step(repo, result.name, a.branch, "merge a")
    assert isinstance(merged, ws.Merged)
    brought = ws.update_from(b.path, result.name)
    assert brought == ws.Merged(sha=merged.sha, kind=ws.MergeKind.FAST_FORWARD)
    assert (b.path / "a.txt").exists()
    assert ws.update_from(b.path, result.name) == ws.Merged(
        sha=merged.sha, kind=ws.MergeKind.UP_TO_DATE
    )


def test_update_from_merges_a_step_with_commits(
    steps: Steps, repo: ws.Repository, result: ws.Branch
) -> None:
    a, b = steps.worktree("a"), steps.worktree("b")
    write(a.path / "a.txt", "a\n")
    write(b.path / "b.txt", "b\n")
    ws.commit_all(a.path, "a", base=a.head)
    b_done = ws.commit_all(b.path, "b", base=b.head)
    ws.merge_step(repo, result.name, a.branch, "merge a")
    brought = ws.update_from(b.path, result.name)
    assert isinstance(brought, ws.Merged) and brought.kind is ws.MergeKind.MERGE_COMMIT
    assert git(b.path, "rev-parse", "HEAD^1") == b_done.head
    assert (b.path / "a.txt").exists() and (b.path / "b.txt").exists()
    assert git(b.path, "log", "-1", "--format=%an", "HEAD") == "directorate"


def test_update_from_refuses_uncommitted_changes(
    steps: Steps, repo: ws.Repository, result: ws.Branch
) -> None:
    a = steps.worktree("a")
    (a.path / "app.py").write_text("unsaved\n")
    with pytest.raises(ws.GitError, match="has uncommitted changes; commit_all them first"):
        ws.update_from(a.path, result.name)
    assert (a.path / "app.py").read_text() == "unsaved\n"
