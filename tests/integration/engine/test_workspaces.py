"""Steps in worktrees of their own, merged into the directive's result branch (issue 10).

Real git repositories in temporary folders, real agent subprocesses, a real database.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import AGENTS, Scripted, ScriptedJudge, wait_for

from directorate.actors import DirectiveSpec, DirectiveStatus, StepSpec
from directorate.actors.workspace import branch_name, short_id
from directorate.persistence.models import AgentSpec, WorkspaceSpec

pytestmark = pytest.mark.integration


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("a project\n")
    (path / "shared.txt").write_text("original\n")
    git(path, "add", "-A")
    git(path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    return path


def run_directive(engine: Any, repo: Path, steps: list[StepSpec], **changes: Any) -> uuid.UUID:
    """Submit and start a full_auto directive on ``repo`` with explicit ``steps``."""
    settings: dict[str, Any] = {
        "title": "Workspaces",
        "goal": "Work apart, merge together",
        "local_path": str(repo),
        "autonomy_level": "full_auto",
        "steps": steps,
    }
    directive_id = engine.submit(DirectiveSpec(**settings | changes))
    engine.start_directive(directive_id)
    return directive_id


def event_data(engine: Any, directive_id: uuid.UUID, kind: str) -> list[dict[str, Any]]:
    return [
        e.data
        for e in engine.db.reads.events_after(directive_id, limit=10_000)
        if e.event_type == kind
    ]


def show(repo: Path, branch: str, path: str) -> str:
    return git(repo, "show", f"{branch}:{path}")


def test_parallel_steps_work_apart_and_the_joining_step_sees_both(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    head_before = git(repo, "rev-parse", "HEAD")
    scripted.write(
        {
            "steps": {
                "left": {"write": {"left.txt": "L\n"}},
                "right": {"write": {"right.txt": "R\n"}},
                "join": {"changes": False},  # a review: it reads both, changes nothing
            }
        }
    )
    engine = engine_factory(runner=scripted.runner(), worktree_dir=tmp_path / "worktrees")
    directive_id = run_directive(
        engine,
        repo,
        [
            StepSpec(name="left"),
            StepSpec(name="right"),
            StepSpec(name="join", step_type="review", depends_on=["left", "right"]),
        ],
    )
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED

    (left,), (right,), (join,) = (scripted.step_runs(n) for n in ("left", "right", "join"))
    assert "left.txt" in left["listing"] and "right.txt" not in left["listing"]
    assert "right.txt" in right["listing"] and "left.txt" not in right["listing"]
    assert {"left.txt", "right.txt"} <= set(join["listing"])
    for run in (left, right, join):  # never inside the user's repository
        assert Path(run["workdir"]).is_relative_to(tmp_path / "worktrees")
    branch = branch_name(directive_id)
    assert show(repo, branch, "left.txt") == "L" and show(repo, branch, "right.txt") == "R"
    # The user's branch and working tree are untouched.
    assert git(repo, "rev-parse", "HEAD") == head_before
    assert git(repo, "status", "--porcelain") == ""
    assert not (repo / "left.txt").exists()
    (created,) = event_data(engine, directive_id, "workspace_created")
    assert created["branch"] == branch and created["base_sha"] == head_before
    merged = event_data(engine, directive_id, "step_merged")
    assert sorted(d["step_name"] for d in merged) == ["join", "left", "right"]
    committed = {d["step_name"]: d for d in event_data(engine, directive_id, "step_committed")}
    assert committed["left"]["files"] == 1 and committed["left"]["insertions"] == 1
    assert committed["join"]["committed"] is False  # it changed nothing


def test_parallel_steps_that_change_one_line_conflict_and_the_second_resolves_it(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    resolved = {"write": {"shared.txt": "left\nright\n"}}
    scripted.write(
        {
            "steps": {
                "left": {"write": {"shared.txt": "left\n"}, "attempts": {"2": resolved}},
                "right": {"write": {"shared.txt": "right\n"}, "attempts": {"2": resolved}},
                "*": {},
            }
        }
    )
    engine = engine_factory(runner=scripted.runner(), worktree_dir=tmp_path / "worktrees")
    directive_id = run_directive(engine, repo, [StepSpec(name="left"), StepSpec(name="right")])
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED

    (conflict,) = event_data(engine, directive_id, "merge_conflict")
    assert conflict["files"] == ["shared.txt"]
    second = scripted.step_runs(conflict["step_name"])
    assert [r["attempt"] for r in second] == [1, 2]
    assert "shared.txt" in second[1]["instructions"]
    assert "<<<<<<<" in second[1]["instructions"]  # the hunk is quoted
    assert show(repo, branch_name(directive_id), "shared.txt") == "left\nright"
    assert (repo / "shared.txt").read_text() == "original\n"


def test_an_agents_own_commit_and_what_it_left_uncommitted_both_land(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    own_commit = ["git", "-c", "user.name=agent", "-c", "user.email=a@a", "commit", "-qam", "mine"]
    scripted.write(
        {
            "steps": {
                "only": {
                    "write": {"shared.txt": "committed by the agent\n"},
                    "commands": [own_commit],
                    "write_after": {"later.txt": "left uncommitted\n"},
                }
            }
        }
    )
    engine = engine_factory(runner=scripted.runner(), worktree_dir=tmp_path / "worktrees")
    directive_id = run_directive(engine, repo, [StepSpec(name="only")])
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
    branch = branch_name(directive_id)
    assert show(repo, branch, "shared.txt") == "committed by the agent"
    assert show(repo, branch, "later.txt") == "left uncommitted"
    subjects = git(repo, "log", "--format=%s", branch).splitlines()
    assert "mine" in subjects
    assert any(s.startswith("directorate: only, attempt 1") for s in subjects)


def _wrapped_up(engine: Any, directive_id: uuid.UUID) -> list[str]:
    kinds = ("workspace_removed", "delivered", "delivery_failed", "workspace_cleanup_failed")
    return [
        e.event_type
        for e in engine.db.reads.events_after(directive_id, limit=10_000)
        if e.event_type in kinds
    ]


@pytest.mark.parametrize("dirty", [False, True], ids=["clean-base", "dirty-base"])
def test_deliver_merge_merges_into_a_clean_base_and_refuses_a_dirty_one(
    engine_factory: Any, scripted: Scripted, tmp_path: Path, dirty: bool
) -> None:
    repo = make_repo(tmp_path / "repo")
    if dirty:
        (repo / "README.md").write_text("the user's own unsaved work\n")
    scripted.write({"steps": {"*": {"write": {"new.txt": "N\n"}}}})
    worktrees = tmp_path / "worktrees"
    engine = engine_factory(runner=scripted.runner(), worktree_dir=worktrees)
    directive_id = run_directive(
        engine, repo, [StepSpec(name="only")], workspace=WorkspaceSpec(deliver="merge")
    )
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
    kinds = wait_for(lambda: "workspace_removed" in (k := _wrapped_up(engine, directive_id)) and k)
    if dirty:
        assert "delivery_failed" in kinds
        assert (repo / "README.md").read_text() == "the user's own unsaved work\n"
        assert not (repo / "new.txt").exists()
    else:
        assert "delivered" in kinds
        assert (repo / "new.txt").read_text() == "N\n"  # merged into the checked-out main
        assert git(repo, "status", "--porcelain") == ""
    # The worktrees are gone, the branches stay, nothing is left for git to prune.
    assert not [p for p in worktrees.rglob("*") if p.is_dir() and (p / ".git").exists()]
    assert not (worktrees / short_id(directive_id)).exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert branch_name(directive_id) in git(repo, "branch", "--list", "directorate/*")


def test_diff_shows_the_directives_work_and_each_steps_own(
    engine_factory: Any,
    scripted: Scripted,
    tmp_path: Path,
    dsn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from directorate.actors.cli import main

    repo = make_repo(tmp_path / "repo")
    scripted.write(
        {
            "steps": {
                "left": {"write": {"left.txt": "L\n"}},
                "right": {"write": {"right.txt": "R\n"}},
            }
        }
    )
    engine = engine_factory(runner=scripted.runner(), worktree_dir=tmp_path / "worktrees")
    directive_id = run_directive(engine, repo, [StepSpec(name="left"), StepSpec(name="right")])
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
    capsys.readouterr()
    assert main(["diff", str(directive_id), "--dsn", dsn]) == 0
    whole = capsys.readouterr().out
    assert "+++ b/left.txt" in whole and "+++ b/right.txt" in whole
    assert main(["diff", str(directive_id), "left", "--dsn", dsn]) == 0
    left = capsys.readouterr().out
    assert "+++ b/left.txt" in left and "right.txt" not in left
    assert main(["diff", str(directive_id), "nope", "--dsn", dsn]) != 0
    assert "no step 'nope'" in capsys.readouterr().err
    assert main(["show", str(directive_id), "--dsn", dsn]) == 0
    shown = capsys.readouterr().out
    assert f"result branch {branch_name(directive_id)}" in shown
    assert f"branch {branch_name(directive_id, 'left')}" in shown and "merged " in shown
    assert main(["show", str(directive_id), "--json", "--dsn", dsn]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["directive"]["result_branch"] == branch_name(directive_id)
    assert all(s["branch"] and s["head_sha"] and s["merge_sha"] for s in record["steps"])


def test_a_rework_attempt_resumes_the_agents_session_in_the_same_worktree(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    scripted.write(
        {
            "steps": {
                "only": {
                    "session_id": "sess-1",
                    "exit": 1,  # attempt 1 fails: red, sent back for rework
                    "attempts": {"2": {"exit": 0, "session_id": "sess-2"}},
                }
            }
        }
    )
    agent = AgentSpec(
        command=[sys.executable, str(AGENTS / "scripted_agent.py"), str(scripted.path)],
        resume_args=["--resume", "{session_id}"],
    )
    engine = engine_factory(worktree_dir=tmp_path / "worktrees")
    directive_id = run_directive(engine, repo, [StepSpec(name="only")], agent=agent)
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
    first, second = scripted.step_runs("only")
    assert first["argv"][2:] == []  # nothing to resume on a first attempt
    assert second["argv"][2:] == ["--resume", "sess-1"]
    assert first["workdir"] == second["workdir"]
    sessions = [t.session_id for t in engine.db.reads.tasks_of_directive(directive_id)]
    assert sorted(s for s in sessions if s) == ["sess-1", "sess-2"]


@pytest.mark.parametrize("folder", ["plain", "no-commit"])
def test_a_folder_without_a_commit_to_branch_from_is_refused_unless_shared_is_asked(
    engine_factory: Any, tmp_path: Path, folder: str
) -> None:
    from directorate.persistence.errors import InvalidInput

    work = tmp_path / folder
    work.mkdir()
    if folder == "no-commit":
        git(work, "init", "-q")
    engine = engine_factory()
    before = len(engine.db.reads.directives())
    with pytest.raises(InvalidInput, match=r"^local_path: .* isolation = \"shared\""):
        engine.submit(DirectiveSpec(title="t", goal="g", local_path=str(work)))
    assert len(engine.db.reads.directives()) == before  # nothing written
    shared = WorkspaceSpec(isolation="shared")
    engine.submit(DirectiveSpec(title="t", goal="g", local_path=str(work), workspace=shared))


def _path_without_gh() -> str:
    import os

    return os.pathsep.join(
        d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "gh").exists()
    )


@pytest.mark.parametrize("with_gh", [False, True], ids=["gh-absent", "gh-stand-in"])
def test_deliver_pull_request_pushes_the_branch_and_opens_a_pull_request_with_gh(
    engine_factory: Any,
    scripted: Scripted,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    with_gh: bool,
) -> None:
    repo = make_repo(tmp_path / "repo")
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    git(repo, "remote", "add", "origin", str(origin))
    path = _path_without_gh()
    argv_file = tmp_path / "gh-argv.json"
    if with_gh:  # GitHub is not reachable here: the one place a stand-in is right
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        gh = bin_dir / "gh"
        gh.write_text(
            f"#!{sys.executable}\n"
            "import json, sys\n"
            f"open({str(argv_file)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
            "print('https://github.example/acme/project/pull/7')\n"
        )
        gh.chmod(0o755)
        path = f"{bin_dir}:{path}"
    monkeypatch.setenv("PATH", path)
    scripted.write({"steps": {"*": {"write": {"new.txt": "N\n"}}}})
    engine = engine_factory(runner=scripted.runner(), worktree_dir=tmp_path / "worktrees")
    directive_id = run_directive(
        engine,
        repo,
        [StepSpec(name="only")],
        title="Add new.txt",
        workspace=WorkspaceSpec(deliver="pull_request"),
    )
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
    wait_for(lambda: "workspace_removed" in _wrapped_up(engine, directive_id))
    branch = branch_name(directive_id)
    # The branch reached the remote either way.
    assert git(origin, "rev-parse", branch) == git(repo, "rev-parse", branch)
    if with_gh:
        (delivered,) = event_data(engine, directive_id, "delivered")
        assert delivered["url"] == "https://github.example/acme/project/pull/7"
        argv = json.loads(argv_file.read_text())
        assert argv[:2] == ["pr", "create"]
        assert "--base=main" in argv and f"--head={branch}" in argv
        assert "--title=Add new.txt" in argv
    else:
        (failed,) = event_data(engine, directive_id, "delivery_failed")
        assert "gh is not installed" in failed["reason"] and failed["pushed"] is True
    assert engine.db.reads.directive(directive_id).status is DirectiveStatus.COMPLETED


def test_a_new_worktree_gets_its_ignored_files_and_setup_before_the_agent(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / ".gitignore").write_text(".env\nsecrets.local\nbuilt/\n")
    (repo / ".worktreeinclude").write_text("secrets.local\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "ignore")
    (repo / ".env").write_text("TOKEN=1\n")
    (repo / "secrets.local").write_text("s\n")
    setup = [sys.executable, "-c", "import pathlib; pathlib.Path('built').mkdir()"]
    scripted.write({"steps": {"*": {}}})
    engine = engine_factory(runner=scripted.runner(), worktree_dir=tmp_path / "worktrees")
    directive_id = run_directive(
        engine, repo, [StepSpec(name="only")], workspace=WorkspaceSpec(copy=[".env"], setup=[setup])
    )
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
    (run,) = scripted.step_runs("only")
    assert {".env", "secrets.local", "built"} <= set(run["listing"])
    # Ignored files stay out of the step's commits.
    files = git(repo, "ls-tree", "-r", "--name-only", branch_name(directive_id)).splitlines()
    assert ".env" not in files and "secrets.local" not in files


def test_the_judge_is_given_the_steps_own_diff(
    engine_factory: Any, scripted: Scripted, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    judge = ScriptedJudge(tmp_path / "judge")
    scripted.write(
        {
            "steps": {
                "left": {"write": {"left.txt": "L\n"}},
                "right": {"write": {"right.txt": "R\n"}, "sleep": 0.5},
            }
        }
    )
    engine = engine_factory(
        runner=scripted.runner(), worktree_dir=tmp_path / "worktrees", verifiers=[]
    )
    directive_id = run_directive(
        engine, repo, [StepSpec(name="left"), StepSpec(name="right")], verifiers=judge.config()
    )
    assert engine.wait(directive_id, timeout=60) is DirectiveStatus.COMPLETED
    prompts = judge.prompts()
    left = [p for p in prompts if "left.txt" in p.split("## Diff", 1)[-1]]
    right = [p for p in prompts if "right.txt" in p.split("## Diff", 1)[-1]]
    assert left and right
    # A step's diff holds its own work, not its sibling's (merged meanwhile or not).
    for prompt in prompts[:2]:
        diff = prompt.split("## Diff", 1)[-1]
        assert ("+++ b/left.txt" in diff) != ("+++ b/right.txt" in diff), diff
