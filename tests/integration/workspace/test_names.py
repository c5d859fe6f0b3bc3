"""Branch names and worktree folders: built from an id and a step name, never escaping."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from directorate.actors import workspace as ws


def test_result_and_step_branches_do_not_collide() -> None:
    assert ws.branch_name("1a2b3c4d") == "directorate/1a2b3c4d"
    assert ws.branch_name("1a2b3c4d", "fix-parser") == "directorate/1a2b3c4d-steps/fix-parser"


def test_a_uuid_gives_its_short_id() -> None:
    directive = uuid.UUID("1a2b3c4d-0000-4000-8000-000000000000")
    assert ws.short_id(directive) == "1a2b3c4d"
    assert ws.branch_name(directive, "a") == "directorate/1a2b3c4d-steps/a"


def test_worktree_path_is_under_home(tmp_path: Path) -> None:
    assert ws.worktree_path(tmp_path, "1a2b3c4d", "write-docs") == (
        tmp_path / "worktrees" / "1a2b3c4d" / "write-docs"
    )


@pytest.mark.parametrize(
    "step",
    [
        "../x",
        "-rf",
        "a b",
        "x/../../y",
        "",
        "A",
        "a/b",
        "a..b",
        "a.lock",
        "-",
        "a-",
        "é",
        "a\0b",
        "x" * 201,
    ],
)
def test_step_names_that_could_escape_are_refused(step: str, tmp_path: Path) -> None:
    with pytest.raises(ws.InvalidName):
        ws.branch_name("1a2b3c4d", step)
    with pytest.raises(ws.InvalidName):
        ws.worktree_path(tmp_path, "1a2b3c4d", step)
    with pytest.raises(ValueError):  # InvalidName is also a ValueError: bad input
        ws.check_step_name(step)


@pytest.mark.parametrize("sid", ["", "xyz", "1A2B3C4D", "../1a2b", "-1a2b3c4d", "1a2"])
def test_short_ids_are_hex(sid: str) -> None:
    with pytest.raises(ws.InvalidName):
        ws.branch_name(sid)


def test_a_bad_branch_name_is_refused_before_git(repo: ws.Repository) -> None:
    head = ws.resolve_base(repo).sha
    for name in ("-D", "a..b", "a b", "HEAD", "x~1", "refs/heads/../x", "a.lock"):
        with pytest.raises(ws.InvalidName):
            ws.create_branch(repo, name, head)
