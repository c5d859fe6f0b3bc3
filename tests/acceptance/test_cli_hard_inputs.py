"""Hard inputs through ``directorate submit`` and ``directorate run`` (issue 11, point 3).

Past a cap, or with a ``local_path`` that is no folder, both commands exit 2 with
one line naming the file and the field, and write nothing; at the cap (a 4 MB
goal) they store it and run it, where a 2 MB goal used to hang them both.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from clihelp import Cli, scripted_directive

from directorate.persistence.validation import MAX_INPUT_CHARS

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]

TEN_MB = 10 * 1024 * 1024
AT_THE_CAP = "\N{MUSICAL SYMBOL G CLEF}" * MAX_INPUT_CHARS
"""The longest goal allowed, four bytes a character: 4 MB in UTF-8."""


def _directives(cli: Cli) -> int:
    with psycopg.connect(cli.dsn) as conn:
        row = conn.execute("SELECT count(*) FROM directives").fetchone()
    assert row is not None
    return int(row[0])


def _with_goal(path: Path, goal: str) -> Path:
    """The scripted directive file, its goal replaced."""
    text = path.read_text(encoding="utf-8")
    text = text.replace('goal = "Run the steps"', f"goal = {json.dumps(goal, ensure_ascii=False)}")
    path.write_text(text, encoding="utf-8")
    return path


BAD_FILES = {
    "goal": ('goal = "BIG"', "goal"),
    "requirement": (
        'goal = "g"\n[[requirements]]\nid = "r1"\ndescription = "BIG"',
        "requirements[0].description",
    ),
    "task-plan": ('goal = "g"\n[[steps]]\nname = "a"\ntask_plan = "BIG"', "steps[0].task_plan"),
}


@pytest.mark.parametrize("where", list(BAD_FILES))
def test_10_mb_in_a_field_exits_2_naming_it_and_writes_nothing(
    cli: Cli, tmp_path: Path, where: str
) -> None:
    body, field = BAD_FILES[where]
    path = tmp_path / "big.toml"
    agent = '[agent]\ncommand = ["true"]\n'
    path.write_text(f'title = "t"\n{body.replace("BIG", "x" * TEN_MB)}\n{agent}')
    for command in ("submit", "run"):
        result = cli(command, str(path))
        assert result.returncode == 2, result.stderr[-500:]
        assert result.stderr == (
            f"directorate: {path}: {field}: {TEN_MB} characters, "
            f"more than the {MAX_INPUT_CHARS} allowed\n"
        )
    assert _directives(cli) == 0


def test_submit_stores_a_goal_at_the_cap(cli: Cli, tmp_path: Path) -> None:
    path = _with_goal(scripted_directive(tmp_path, steps=[{"name": "only"}], script={}), AT_THE_CAP)
    result = cli("submit", str(path), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    directive_id = json.loads(result.stdout)["directive_id"]
    with psycopg.connect(cli.dsn) as conn:
        row = conn.execute("SELECT goal FROM directives WHERE id = %s", (directive_id,)).fetchone()
    assert row is not None and row[0] == AT_THE_CAP


def test_run_follows_a_goal_at_the_cap_to_the_end(cli: Cli, tmp_path: Path) -> None:
    path = _with_goal(scripted_directive(tmp_path, steps=[{"name": "only"}], script={}), AT_THE_CAP)
    result = cli("run", str(path), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1])["status"] == "completed"


@pytest.mark.parametrize(
    ("local_path", "problem"),
    [("missing", "does not exist"), ("a-file", "is not a directory")],
)
@pytest.mark.parametrize(
    "command",
    [("submit",), ("submit", "--copy"), ("run",), ("run", "--in-place")],
    ids=" ".join,
)
def test_a_local_path_that_is_no_folder_exits_2_and_writes_nothing(
    cli: Cli, tmp_path: Path, local_path: str, problem: str, command: tuple[str, ...]
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    path = tmp_path / "directive.toml"
    path.write_text(
        f'title = "t"\ngoal = "g"\nlocal_path = "{local_path}"\n[agent]\ncommand = ["true"]\n'
    )
    result = cli(*command, str(path))
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"directorate: {path}: local_path: {tmp_path / local_path} {problem}\n"
    )
    assert _directives(cli) == 0
