"""Finding repositories, baselines, bases and branches; how git is run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from workspace_helpers import git, make_repository, process_gone, wait_for_file, write

from directorate.actors import workspace as ws
from directorate.actors.workspace import gitcli


def test_find_repository_from_a_subfolder(repo: ws.Repository, user_repo: Path) -> None:
    found = ws.find_repository(user_repo / "lib")
    assert found == ws.Repository(toplevel=user_repo.resolve(), common_dir=user_repo / ".git")


def test_find_repository_outside_any(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert ws.find_repository(plain) is None


def test_find_repository_of_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ws.GitError, match="no such directory"):
        ws.find_repository(tmp_path / "nowhere")


def test_find_repository_of_a_bare_repository_is_an_error(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "--bare", "bare.git")
    with pytest.raises(ws.GitError, match="find_repository"):
        ws.find_repository(tmp_path / "bare.git")


def test_init_baseline_commits_everything(tmp_path: Path) -> None:
    folder = tmp_path / "hello"
    write(folder / "hello.py", "print('hi')\n")
    write(folder / "data" / "x.txt", "x\n")
    repo = ws.init_baseline(folder)
    assert repo.toplevel == folder.resolve()
    assert git(folder, "ls-tree", "-r", "--name-only", "HEAD").split() == [
        "data/x.txt",
        "hello.py",
    ]
    assert git(folder, "log", "--format=%an <%ae>|%s") == (
        "directorate <directorate@localhost>|directorate: baseline of hello"
    )
    assert git(folder, "status", "--porcelain") == ""
    assert ws.resolve_base(repo).branch == "main"


def test_init_baseline_is_idempotent(tmp_path: Path) -> None:
    folder = tmp_path / "hello"
    write(folder / "a.txt", "a\n")
    first = ws.init_baseline(folder)
    head = git(folder, "rev-parse", "HEAD")
    assert ws.init_baseline(folder) == first
    assert git(folder, "rev-parse", "HEAD") == head


def test_init_baseline_of_an_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    repo = ws.init_baseline(folder)
    assert ws.resolve_base(repo).sha == git(folder, "rev-parse", "HEAD")


def test_resolve_base_default_is_head(repo: ws.Repository, user_repo: Path) -> None:
    assert ws.resolve_base(repo) == ws.Base(branch="main", sha=git(user_repo, "rev-parse", "HEAD"))


def test_resolve_base_names(repo: ws.Repository, user_repo: Path) -> None:
    first = git(user_repo, "rev-parse", "HEAD")
    git(user_repo, "tag", "v1")
    git(user_repo, "switch", "-q", "-c", "feature")
    write(user_repo / "f.txt", "f\n")
    git(user_repo, "add", "f.txt")
    git(user_repo, "commit", "-q", "-m", "feature")
    feature = git(user_repo, "rev-parse", "HEAD")
    assert ws.resolve_base(repo, "main") == ws.Base(branch="main", sha=first)
    assert ws.resolve_base(repo, "refs/heads/main") == ws.Base(branch="main", sha=first)
    assert ws.resolve_base(repo, "v1") == ws.Base(branch=None, sha=first)
    assert ws.resolve_base(repo, first[:10]) == ws.Base(branch=None, sha=first)
    assert ws.resolve_base(repo, "HEAD") == ws.Base(branch="feature", sha=feature)
    git(user_repo, "switch", "-q", "--detach", "main")
    assert ws.resolve_base(repo) == ws.Base(branch=None, sha=first)


def test_resolve_base_unknown_name(repo: ws.Repository) -> None:
    with pytest.raises(ws.GitError, match=r"'no-such' is not a branch, tag or commit"):
        ws.resolve_base(repo, "no-such")
    with pytest.raises(ws.InvalidName):
        ws.resolve_base(repo, "--output=x")


def test_resolve_base_of_an_empty_repository(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "empty")
    repo = ws.find_repository(tmp_path / "empty")
    assert repo is not None
    with pytest.raises(ws.GitError, match="has no commit yet"):
        ws.resolve_base(repo)
    with pytest.raises(ws.GitError, match="has no commit yet"):
        ws.resolve_base(repo, "main")


def test_create_branch_is_idempotent(repo: ws.Repository, user_repo: Path) -> None:
    first = git(user_repo, "rev-parse", "HEAD")
    made = ws.create_branch(repo, "directorate/1a2b3c4d", first)
    assert made == ws.Branch(name="directorate/1a2b3c4d", sha=first, created=True)
    write(user_repo / "x.txt", "x\n")
    git(user_repo, "add", "x.txt")
    git(user_repo, "commit", "-q", "-m", "x")
    second = git(user_repo, "rev-parse", "HEAD")
    # It exists (at the first commit): kept where it is, not moved to the second.
    again = ws.create_branch(repo, "directorate/1a2b3c4d", second)
    assert again == ws.Branch(name="directorate/1a2b3c4d", sha=first, created=False)
    assert git(user_repo, "rev-parse", "directorate/1a2b3c4d") == first
    assert git(user_repo, "symbolic-ref", "--short", "HEAD") == "main"


def test_create_branch_from_a_missing_commit(repo: ws.Repository) -> None:
    with pytest.raises(ws.GitError, match="is not a commit"):
        ws.create_branch(repo, "directorate/1a2b3c4d", "0" * 40)


def test_a_ref_cannot_be_a_file_and_a_folder(repo: ws.Repository) -> None:
    """Why step branches are not below the result branch."""
    head = ws.resolve_base(repo).sha
    ws.create_branch(repo, "directorate/1a2b3c4d", head)
    with pytest.raises(ws.GitError, match="create_branch: git update-ref failed"):
        ws.create_branch(repo, "directorate/1a2b3c4d/step", head)
    assert ws.create_branch(repo, ws.branch_name("1a2b3c4d", "step"), head).created


def test_git_variables_of_the_caller_do_not_redirect_git(
    repo: ws.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_repository(tmp_path / "other", {"o.txt": "o\n"})
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    base = ws.resolve_base(repo)
    ws.create_branch(repo, "directorate/1a2b3c4d", base.sha)
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert git(repo.toplevel, "rev-parse", "directorate/1a2b3c4d") == base.sha
    assert git(other, "branch", "--list", "directorate/*") == ""


def test_a_timeout_kills_git_and_its_children(repo: ws.Repository, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    # An alias that runs a shell: it stands for a hook, a filter or ssh that hangs.
    alias = f"alias.hang=!echo $$ > {pid_file}; exec sleep 60"
    start = time.monotonic()
    with pytest.raises(ws.GitError, match=r"hang: git hang timed out after 0.5 s"):
        gitcli.git("hang", repo.toplevel, "-c", alias, "hang", timeout_s=0.5)
    assert time.monotonic() - start < 5
    assert process_gone(int(wait_for_file(pid_file)))


def test_a_failure_is_one_line_with_gits_reason(repo: ws.Repository) -> None:
    with pytest.raises(ws.GitError) as caught:
        gitcli.git("reading", repo.toplevel, "rev-parse", "--verify", "no-such-ref")
    assert str(caught.value) == "reading: git rev-parse failed: Needed a single revision"


def test_output_beyond_the_bound_is_an_error(repo: ws.Repository) -> None:
    with pytest.raises(ws.GitError, match="said more than 10 bytes"):
        gitcli.git("listing", repo.toplevel, "ls-files", max_stdout=10)


def test_missing_git_is_a_clear_error(
    repo: ws.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(ws.GitError, match=r"git is not installed \(no 'git' on PATH\)"):
        ws.find_repository(repo.toplevel)


@pytest.mark.parametrize(
    ("said", "error"),
    [
        (
            "git version 2.37.1",
            "git 2.38 or newer is needed (for merge-tree --write-tree); found 2.37.1",
        ),
        ("git version 1.9", "found 1.9.0"),
        ("no version here", "cannot read git's version"),
    ],
)
def test_an_old_git_is_refused(said: str, error: str) -> None:
    with pytest.raises(ws.GitError, match=error.replace("(", r"\(").replace(")", r"\)")):
        gitcli.check_version(said)


@pytest.mark.parametrize(
    "said",
    [
        "git version 2.38.0",
        "git version 2.39.5",
        "git version 2.39.0.windows.1",
        "git version 2.39.5 (Apple Git-154)",
        "git version 3.0.0",
    ],
)
def test_a_recent_git_is_accepted(said: str) -> None:
    gitcli.check_version(said)
