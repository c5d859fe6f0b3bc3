"""Delivery: the result merged into the base branch, or pushed and opened as a pull request."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from workspace_helpers import (
    Steps,
    files_at,
    git,
    process_gone,
    show,
    wait_for_file,
    write,
    write_tool,
)

from directorate.actors import workspace as ws


def finished_result(steps: Steps, repo: ws.Repository, result: ws.Branch) -> str:
    """A result branch holding one merged step that adds done.txt and edits app.py."""
    made = steps.worktree("a")
    write(made.path / "done.txt", "done\n")
    (made.path / "app.py").write_text("def greet():\n    return 'hello, world'\n")
    ws.commit_all(made.path, "step a", base=made.head)
    merged = ws.merge_step(repo, result.name, made.branch, "merge a")
    assert isinstance(merged, ws.Merged)
    return merged.sha


def test_merge_into_a_clean_checked_out_base(
    steps: Steps, repo: ws.Repository, user_repo: Path, result: ws.Branch
) -> None:
    sha = finished_result(steps, repo, result)
    write(user_repo / "scratch.txt", "untracked: not in the way, kept\n")
    delivered = ws.deliver_merge(repo, "main", result.name)
    assert delivered == ws.Delivered(branch="main", sha=sha, kind=ws.MergeKind.FAST_FORWARD)
    assert git(user_repo, "rev-parse", "HEAD") == sha
    assert (user_repo / "done.txt").read_text() == "done\n"  # the working tree follows
    assert git(user_repo, "status", "--porcelain") == "?? scratch.txt"
    assert git(user_repo, "rev-parse", result.name) == sha  # the result branch stays


def test_merge_into_a_base_that_moved_makes_a_merge_commit(
    steps: Steps, repo: ws.Repository, user_repo: Path, result: ws.Branch
) -> None:
    sha = finished_result(steps, repo, result)
    write(user_repo / "later.txt", "the user went on\n")
    git(user_repo, "add", "later.txt")
    git(user_repo, "commit", "-q", "-m", "later")
    later = git(user_repo, "rev-parse", "HEAD")
    delivered = ws.deliver_merge(repo, "main", result.name)
    assert isinstance(delivered, ws.Delivered)
    assert delivered.kind is ws.MergeKind.MERGE_COMMIT
    assert git(user_repo, "rev-parse", "HEAD^1", "HEAD^2").split() == [later, sha]
    assert (user_repo / "done.txt").exists() and (user_repo / "later.txt").exists()
    assert git(user_repo, "status", "--porcelain") == ""


def test_merge_into_a_dirty_base_is_refused_and_touches_nothing(
    steps: Steps, repo: ws.Repository, user_repo: Path, result: ws.Branch
) -> None:
    sha = finished_result(steps, repo, result)
    head = git(user_repo, "rev-parse", "HEAD")
    (user_repo / "README.md").write_text("# the user's unsaved edit\n")
    refused = ws.deliver_merge(repo, "main", result.name)
    assert isinstance(refused, ws.Refused)
    assert refused.files == ("README.md",)
    assert "main is checked out in" in refused.reason
    assert "with uncommitted changes (README.md); nothing was changed" in refused.reason
    assert (user_repo / "README.md").read_text() == "# the user's unsaved edit\n"
    assert git(user_repo, "rev-parse", "HEAD") == head
    assert git(user_repo, "status", "--porcelain") == "M README.md"
    assert not (user_repo / "done.txt").exists()
    assert git(user_repo, "rev-parse", result.name) == sha


def test_a_staged_change_counts_as_dirty(
    steps: Steps, repo: ws.Repository, user_repo: Path, result: ws.Branch
) -> None:
    finished_result(steps, repo, result)
    write(user_repo / "new.txt", "staged\n")
    git(user_repo, "add", "new.txt")
    refused = ws.deliver_merge(repo, "main", result.name)
    assert isinstance(refused, ws.Refused) and refused.files == ("new.txt",)


def test_merge_into_a_base_with_a_merge_in_progress_is_refused(
    steps: Steps, repo: ws.Repository, user_repo: Path, result: ws.Branch
) -> None:
    finished_result(steps, repo, result)
    (repo.common_dir / "MERGE_HEAD").write_text(git(user_repo, "rev-parse", "HEAD") + "\n")
    refused = ws.deliver_merge(repo, "main", result.name)
    assert isinstance(refused, ws.Refused)
    assert "has an operation in progress (MERGE_HEAD)" in refused.reason


def test_merge_into_a_base_that_is_not_checked_out(
    steps: Steps, repo: ws.Repository, user_repo: Path, result: ws.Branch
) -> None:
    sha = finished_result(steps, repo, result)
    git(user_repo, "switch", "-q", "-c", "elsewhere")
    (user_repo / "README.md").write_text("dirty, but on another branch\n")
    delivered = ws.deliver_merge(repo, "main", result.name)
    assert delivered == ws.Delivered(branch="main", sha=sha, kind=ws.MergeKind.FAST_FORWARD)
    assert git(user_repo, "rev-parse", "main") == sha
    assert git(user_repo, "symbolic-ref", "--short", "HEAD") == "elsewhere"
    assert (user_repo / "README.md").read_text() == "dirty, but on another branch\n"


def test_a_conflicting_delivery_is_refused_naming_the_files(
    steps: Steps, repo: ws.Repository, user_repo: Path, result: ws.Branch
) -> None:
    sha = finished_result(steps, repo, result)
    (user_repo / "app.py").write_text("def greet():\n    return 'the user changed it'\n")
    git(user_repo, "commit", "-q", "-am", "user edit")
    head = git(user_repo, "rev-parse", "HEAD")
    refused = ws.deliver_merge(repo, "main", result.name)
    assert refused == ws.Refused(
        reason=f"merging {result.name} into main conflicts in app.py", files=("app.py",)
    )
    assert git(user_repo, "rev-parse", "HEAD") == head
    assert git(user_repo, "status", "--porcelain") == ""
    assert git(user_repo, "rev-parse", result.name) == sha
    # Not checked out: refused the same way, the branch not moved.
    git(user_repo, "switch", "-q", "--detach")
    assert isinstance(ws.deliver_merge(repo, "main", result.name), ws.Refused)
    assert git(user_repo, "rev-parse", "main") == head


def test_delivering_twice_is_up_to_date(
    steps: Steps, repo: ws.Repository, result: ws.Branch
) -> None:
    sha = finished_result(steps, repo, result)
    ws.deliver_merge(repo, "main", result.name)
    assert ws.deliver_merge(repo, "main", result.name) == ws.Delivered(
        branch="main", sha=sha, kind=ws.MergeKind.UP_TO_DATE
    )


def test_a_missing_base_branch_is_refused(
    steps: Steps, repo: ws.Repository, result: ws.Branch
) -> None:
    refused = ws.deliver_merge(repo, "no-such", result.name)
    assert isinstance(refused, ws.Refused) and "there is no branch no-such" in refused.reason


@pytest.fixture
def origin(tmp_path: Path, user_repo: Path) -> Path:
    """A local bare repository as the user's ``origin``."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(user_repo, "remote", "add", "origin", str(bare))
    git(user_repo, "push", "-q", "origin", "main")
    return bare


def no_gh_path(tmp_path: Path) -> str:
    """A PATH with git but certainly no gh."""
    bin_dir = tmp_path / "git-only-bin"
    bin_dir.mkdir(exist_ok=True)
    real = shutil.which("git")
    assert real is not None
    (bin_dir / "git").symlink_to(real)
    return str(bin_dir)


def test_pull_request_without_gh_is_refused_after_the_push(
    steps: Steps,
    repo: ws.Repository,
    result: ws.Branch,
    origin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sha = finished_result(steps, repo, result)
    monkeypatch.setenv("PATH", no_gh_path(tmp_path))
    refused = ws.deliver_pull_request(
        repo, result.name, "main", title="Add done.txt", body="Steps: a"
    )
    assert refused == ws.Refused(
        reason=f"gh is not installed (no 'gh' on PATH); {result.name} was pushed to origin",
        pushed=True,
    )
    assert git(origin, "rev-parse", f"refs/heads/{result.name}") == sha


def test_pull_request_with_gh(
    steps: Steps,
    repo: ws.Repository,
    user_repo: Path,
    result: ws.Branch,
    origin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sha = finished_result(steps, repo, result)
    record = tmp_path / "gh-argv.json"
    # The stand-in records its argv, its folder and the body file's content.
    body_copy = tmp_path / "gh-body.md"
    write_tool(
        tmp_path / "bin",
        "gh",
        f"""python3 - "$@" <<'PY'
import json, os, sys
args = sys.argv[1:]
body = next(a.split("=", 1)[1] for a in args if a.startswith("--body-file="))
open({str(body_copy)!r}, "w").write(open(body).read())
json.dump({{"argv": args, "cwd": os.getcwd(), "prompt": os.environ.get("GH_PROMPT_DISABLED")}},
          open({str(record)!r}, "w"))
PY
echo "Creating pull request for {result.name} into main" >&2
echo "https://github.com/example/project/pull/7"
""",
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    delivered = ws.deliver_pull_request(
        repo, result.name, "main", title="-Add done.txt", body="Steps:\n- a\n"
    )
    assert delivered == ws.Delivered(
        branch=result.name, sha=sha, url="https://github.com/example/project/pull/7"
    )
    said = json.loads(record.read_text())
    assert said["argv"][:2] == ["pr", "create"]
    assert said["argv"][2:6] == [
        "--base=main",
        f"--head={result.name}",
        "--title=-Add done.txt",
        said["argv"][5],
    ]
    assert said["argv"][5].startswith("--body-file=")
    assert body_copy.read_text() == "Steps:\n- a\n"
    assert Path(said["cwd"]).resolve() == user_repo.resolve()
    assert said["prompt"] == "1"
    assert git(origin, "rev-parse", f"refs/heads/{result.name}") == sha


def test_an_open_pull_request_is_delivered_again(
    steps: Steps,
    repo: ws.Repository,
    result: ws.Branch,
    origin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finished_result(steps, repo, result)
    url = "https://github.com/example/project/pull/7"
    write_tool(
        tmp_path / "bin",
        "gh",
        f'echo "a pull request for branch \\"x\\" into branch \\"main\\" already exists:" >&2\n'
        f'echo "{url}" >&2\nexit 1',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    delivered = ws.deliver_pull_request(repo, result.name, "main", title="t", body="b")
    assert isinstance(delivered, ws.Delivered)
    assert delivered.url == url and delivered.existing


def test_a_failing_gh_is_refused_with_its_reason(
    steps: Steps,
    repo: ws.Repository,
    result: ws.Branch,
    origin: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finished_result(steps, repo, result)
    write_tool(
        tmp_path / "bin",
        "gh",
        'echo "To get started with GitHub CLI, please run:  gh auth login" >&2\nexit 4',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    refused = ws.deliver_pull_request(repo, result.name, "main", title="t", body="b")
    assert refused == ws.Refused(
        reason="gh pr create failed: To get started with GitHub CLI, please run:  gh auth login"
        f"; {result.name} was pushed to origin",
        pushed=True,
    )


def test_a_missing_remote_is_refused(steps: Steps, repo: ws.Repository, result: ws.Branch) -> None:
    finished_result(steps, repo, result)
    refused = ws.deliver_pull_request(repo, result.name, "main", title="t", body="b")
    assert refused == ws.Refused(reason=f"there is no remote 'origin' in {repo.toplevel}")
    assert ws.deliver_pull_request(
        repo, result.name, "main", title="t", body="b", remote="--mirror"
    ) == ws.Refused(reason="'--mirror' is not a remote name")


def test_a_rejected_push_is_refused_with_gits_reason(
    steps: Steps,
    repo: ws.Repository,
    user_repo: Path,
    result: ws.Branch,
    origin: Path,
    tmp_path: Path,
) -> None:
    finished_result(steps, repo, result)
    # Someone else pushed a different branch of the same name first.
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(origin), str(other))
    write(other / "theirs.txt", "theirs\n")
    git(other, "add", "theirs.txt")
    git(other, "commit", "-q", "-m", "theirs")
    git(other, "push", "-q", "origin", f"HEAD:refs/heads/{result.name}")
    refused = ws.deliver_pull_request(repo, result.name, "main", title="t", body="b")
    assert isinstance(refused, ws.Refused) and not refused.pushed
    assert refused.reason.startswith(f"git push origin {result.name} failed: ")
    assert "failed to push some refs" in refused.reason


def test_a_push_that_hangs_is_killed(
    steps: Steps,
    repo: ws.Repository,
    user_repo: Path,
    result: ws.Branch,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finished_result(steps, repo, result)
    pid_file = tmp_path / "ssh.pid"
    ssh = write_tool(tmp_path / "bin", "fake-ssh", f"echo $$ > {pid_file}\nexec sleep 60")
    monkeypatch.setenv("GIT_SSH_COMMAND", str(ssh))
    git(user_repo, "remote", "add", "origin", "ssh://git.example.invalid/project.git")
    start = time.monotonic()
    refused = ws.deliver_pull_request(repo, result.name, "main", title="t", body="b", timeout_s=1.0)
    assert time.monotonic() - start < 10
    assert isinstance(refused, ws.Refused) and "timed out after 1 s" in refused.reason
    assert process_gone(int(wait_for_file(pid_file)))
    assert files_at(user_repo, result.name)  # the branch stays
    assert show(user_repo, result.name, "done.txt") == "done\n"


def test_an_untracked_file_in_the_way_is_refused_and_kept(
    steps: Steps, repo: ws.Repository, user_repo: Path, result: ws.Branch
) -> None:
    finished_result(steps, repo, result)
    head = git(user_repo, "rev-parse", "HEAD")
    write(user_repo / "done.txt", "the user's own, untracked\n")
    refused = ws.deliver_merge(repo, "main", result.name)
    assert isinstance(refused, ws.Refused)
    assert refused.reason.startswith(f"git merge in {user_repo}")
    assert "untracked working tree files would be overwritten" in refused.reason
    assert (user_repo / "done.txt").read_text() == "the user's own, untracked\n"
    assert git(user_repo, "rev-parse", "HEAD") == head
    assert git(user_repo, "status", "--porcelain") == "?? done.txt"


def test_merge_where_the_base_is_checked_out_in_another_worktree(
    steps: Steps, repo: ws.Repository, user_repo: Path, result: ws.Branch, tmp_path: Path
) -> None:
    sha = finished_result(steps, repo, result)
    feature = tmp_path / "feature-tree"
    git(user_repo, "worktree", "add", "-q", "-b", "feature", str(feature), "main")
    before = git(user_repo, "rev-parse", "HEAD")
    (feature / "README.md").write_text("dirty in the feature tree\n")
    refused = ws.deliver_merge(repo, "feature", result.name)
    assert isinstance(refused, ws.Refused) and str(feature) in refused.reason
    git(feature, "checkout", "--", "README.md")
    delivered = ws.deliver_merge(repo, "feature", result.name)
    assert delivered == ws.Delivered(branch="feature", sha=sha, kind=ws.MergeKind.FAST_FORWARD)
    assert (feature / "done.txt").exists()
    assert git(user_repo, "rev-parse", "HEAD") == before
    assert not (user_repo / "done.txt").exists()
