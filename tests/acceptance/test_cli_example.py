"""The README's example and bad input, through the installed command."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from clihelp import REPO, Cli

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(90)]
EXAMPLE = REPO / "examples" / "hello"


def tree_hash(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_example_runs_to_completion_on_a_copy(cli: Cli) -> None:
    before = tree_hash(EXAMPLE)
    started = time.monotonic()
    result = cli("run", str(EXAMPLE / "directive.toml"), timeout=60)
    wall = time.monotonic() - started
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in result.stderr
    assert "plan ready: fix-add, fix-multiply, run-tests" in out
    assert "fix-multiply: sent back for rework" in out
    assert "fix-multiply: attempt 2 started" in out
    assert "completed: Fix the calculator" in out
    assert "rework       1 cycle(s)" in out
    assert wall < 30, f"the example took {wall:.1f} s"
    assert tree_hash(EXAMPLE) == before


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('title = "t"\ngoal = "g"\ncolour = "blue"\n', "colour: unknown key"),
        ('title = "t"\n', "goal: missing"),
        ('title = "t"\ngoal = "g"\nmax_rework_cycles = "many"\n', "max_rework_cycles"),
        ('title = "t\ngoal = "g"\n', "not valid TOML"),
    ],
)
def test_a_malformed_file_exits_2_with_one_line(
    cli: Cli, tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    for command in ("run", "submit"):
        result = cli(command, str(path))
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert named in result.stderr and str(path) in result.stderr


def test_an_unknown_id_exits_2(cli: Cli) -> None:
    result = cli("show", "0000ffff")
    assert result.returncode == 2
    assert result.stderr.strip() == "directorate: no directive has an id starting with '0000ffff'"
