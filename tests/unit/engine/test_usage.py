"""Reported tokens and turns: counted as documented in ``actors.usage``; an unusable
figure is recorded as unknown with a note (a warning event), never fails the task."""

from __future__ import annotations

import json
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest

from directorate.actors import CallableRunner, CommandRunner
from directorate.actors.directive_file import load_directive_file
from directorate.actors.evaluation import changed_nothing
from directorate.actors.runners import runner_for
from directorate.actors.usage import budget_text
from directorate.persistence.models import StepType, Task, TaskKind, TaskStatus
from directorate.verifiers.tools.figures import read_tokens, read_turns

HUGE = "1" + "0" * 400  # a 401-digit integer: no float holds it

#: Claude Code's `--output-format json` result line, as it prints it (abridged)
CLAUDE_REPORT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "num_turns": 7,
    "result": "Added the flag.",
    "total_cost_usd": 0.42,
    "usage": {
        "input_tokens": 1200,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 95000,
        "output_tokens": 800,
    },
}

TOKENS = [
    pytest.param(json.dumps(CLAUDE_REPORT), 5000, None, id="claude-code-usage"),
    pytest.param('{"usage": {"input_tokens": 3, "output_tokens": 6}}', 9, None, id="usage-part"),
    pytest.param('{"usage": {"total_tokens": 42, "prompt_tokens": 40}}', 42, None, id="openai"),
    pytest.param('{"tokens": 1500}', 1500, None, id="tokens"),
    pytest.param('{"total_tokens": 1500.0}', 1500, None, id="total-tokens-whole-float"),
    pytest.param("{}", None, None, id="none-reported"),
    pytest.param('{"tokens": NaN}', None, "not a finite", id="nan"),
    pytest.param('{"tokens": -1}', None, "negative", id="negative"),
    pytest.param('{"tokens": true}', None, "not a number", id="a-bool"),
    pytest.param('{"tokens": "1500"}', None, "not a number", id="a-string"),
    pytest.param('{"tokens": 2.5}', None, "not a whole number", id="fractional"),
    pytest.param('{"tokens": ' + HUGE + "}", None, "absurdly large", id="401-digits"),
    pytest.param('{"tokens": 1e308}', None, "absurdly large", id="1e308"),
    pytest.param('{"usage": "lots"}', None, "not an object", id="usage-not-an-object"),
    pytest.param('{"usage": {"cache_read_input_tokens": 9}}', None, "has no", id="usage-empty"),
    pytest.param(
        '{"usage": {"input_tokens": 5, "output_tokens": -3}}',
        None,
        "usage.output_tokens -3 is negative",
        id="usage-part-negative",
    ),
    pytest.param(
        '{"usage": {"input_tokens": 9000000000, "output_tokens": 9000000000}}',
        None,
        "adds up to 18000000000 tokens",
        id="usage-sum-absurd",
    ),
]

TURNS = [
    pytest.param(json.dumps(CLAUDE_REPORT), 7, None, id="claude-code-num-turns"),
    pytest.param('{"turns": 3}', 3, None, id="turns"),
    pytest.param("{}", None, None, id="none-reported"),
    pytest.param('{"num_turns": Infinity}', None, "not a finite", id="infinity"),
    pytest.param('{"num_turns": -2}', None, "negative", id="negative"),
    pytest.param('{"num_turns": false}', None, "not a number", id="a-bool"),
    pytest.param('{"turns": "three"}', None, "not a number", id="a-string"),
    pytest.param('{"num_turns": ' + HUGE + "}", None, "absurdly large", id="401-digits"),
]


def task(tmp_path: Path, budget_usd: float | None = None) -> Task:
    return Task(
        id=uuid.uuid4(),
        directive_id=uuid.uuid4(),
        kind=TaskKind.STEP,
        step_id=uuid.uuid4(),
        instructions="do it",
        workdir=str(tmp_path),
        log_path=str(tmp_path / "agent.log"),
        budget_usd=budget_usd,
    )


def run_agent(tmp_path: Path, line: str) -> Any:
    agent = tmp_path / "agent.py"
    agent.write_text(f"import sys\nsys.stdin.read()\nprint('working')\nprint({line!r})\n")
    return CommandRunner([sys.executable, str(agent)], timeout_s=30).run(
        task(tmp_path), threading.Event()
    )


def assert_note(note: str | None, expected: str | None) -> None:
    if expected is None:
        assert note is None
    else:
        assert note is not None and expected in note, note
        assert len(note) < 120  # one short line, even for 401 digits


@pytest.mark.parametrize(("line", "tokens", "note"), TOKENS)
def test_an_agent_reports_tokens_and_exits_0_whatever_it_reports(
    tmp_path: Path, line: str, tokens: int | None, note: str | None
) -> None:
    result = run_agent(tmp_path, line)
    assert result.status is TaskStatus.SUCCEEDED
    assert result.tokens == tokens
    assert_note(result.tokens_note, note)


@pytest.mark.parametrize(("line", "turns", "note"), TURNS)
def test_an_agent_reports_turns_and_exits_0_whatever_it_reports(
    tmp_path: Path, line: str, turns: int | None, note: str | None
) -> None:
    result = run_agent(tmp_path, line)
    assert result.status is TaskStatus.SUCCEEDED
    assert result.turns == turns
    assert_note(result.turns_note, note)


def test_cache_reads_do_not_count_toward_tokens() -> None:
    usage = CLAUDE_REPORT["usage"]
    assert isinstance(usage, dict)
    more_reads = {**CLAUDE_REPORT, "usage": {**usage, "cache_read_input_tokens": 10**8}}
    assert read_tokens(more_reads) == read_tokens(CLAUDE_REPORT) == (5000, None)


def test_the_first_key_present_decides() -> None:
    assert read_tokens({"tokens": "x", "usage": {"input_tokens": 5}})[0] is None
    assert read_tokens({"total_tokens": 7, "usage": {"input_tokens": 5}}) == (7, None)
    assert read_turns({"num_turns": "x", "turns": 4})[0] is None
    assert read_turns({"turns": 4}) == (4, None)


@pytest.mark.parametrize(
    ("value", "tokens", "turns", "noted"),
    [
        pytest.param({"usage": {"input_tokens": 10, "output_tokens": 5}, "num_turns": 2},
                     15, 2, False, id="claude-shaped-mapping"),
        pytest.param({"tokens": 99, "turns": 1, "summary": "ok"}, 99, 1, False, id="simple-keys"),
        pytest.param({"tokens": float("nan"), "turns": -1}, None, None, True, id="unusable"),
        pytest.param("just a summary", None, None, False, id="a-string"),
    ],
)  # fmt: skip
def test_a_callable_agent_reports_tokens_and_turns_in_its_mapping(
    tmp_path: Path, value: Any, tokens: int | None, turns: int | None, noted: bool
) -> None:
    result = CallableRunner(lambda t, c: value).run(task(tmp_path), threading.Event())
    assert result.status is TaskStatus.SUCCEEDED
    assert (result.tokens, result.turns) == (tokens, turns)
    assert (result.tokens_note is not None, result.turns_note is not None) == (noted, noted)


# ----------------------------------------------------------------- DIRECTORATE_BUDGET_USD

PRINT_BUDGET = (
    "import json, os, sys\n"
    "sys.stdin.read()\n"
    "print(json.dumps({'budget': os.environ.get('DIRECTORATE_BUDGET_USD')}))\n"
)


@pytest.mark.parametrize(
    ("budget", "shown"),
    [
        pytest.param(3.75, "3.75", id="dollars-left"),
        pytest.param(0.0, "0.00", id="nothing-left"),
        pytest.param(2.999, "2.99", id="rounded-down"),
        pytest.param(None, "", id="no-dollar-limit-is-empty"),
    ],
)
def test_the_agent_gets_the_dollars_left_in_its_environment(
    tmp_path: Path, budget: float | None, shown: str
) -> None:
    t = task(tmp_path, budget_usd=budget)
    result = CommandRunner([sys.executable, "-c", PRINT_BUDGET], timeout_s=30).run(
        t, threading.Event()
    )
    assert result.status is TaskStatus.SUCCEEDED
    report = json.loads(Path(t.log_path or "").read_text().splitlines()[-1])
    assert report == {"budget": shown}
    assert budget_text(budget) == shown


#: the Claude Code example directive (kind "claude-code") as shipped
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "claude-code" / "directive.toml"
CLAUDE_ARGS = ["--output-format", "json", "--permission-mode", "acceptEdits"]
ALLOWED = ["--allowedTools", "Bash(git diff:*),Bash(python -m pytest:*)"]

FAKE_CLAUDE = """#!{python}
import json, sys
stdin = sys.stdin.read()
print(json.dumps({{"argv": sys.argv[1:], "stdin": stdin, "num_turns": 1,
                  "usage": {{"input_tokens": 1}}}}))
"""


@pytest.mark.parametrize(
    ("budget", "argv"),
    [
        pytest.param(
            3.75, ["-p", *CLAUDE_ARGS, "--max-budget-usd", "3.75", *ALLOWED], id="a-dollar-limit"
        ),
        pytest.param(None, ["-p", *CLAUDE_ARGS, *ALLOWED], id="no-dollar-limit-no-flag"),
    ],
)
def test_the_claude_code_kind_hands_the_budget_to_max_budget_usd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: float | None, argv: list[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    claude = bin_dir / "claude"
    claude.write_text(FAKE_CLAUDE.format(python=sys.executable))
    claude.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")  # the agent's PATH comes from here
    instructions = 'Fix "it"; $(rm -rf ~) `echo no` $DIRECTORATE_BUDGET_USD'
    t = attrs.evolve(task(tmp_path, budget_usd=budget), instructions=instructions)
    spec = load_directive_file(EXAMPLE)
    assert spec.agent is not None
    result = runner_for(spec.agent, None).run(t, threading.Event())
    assert result.status is TaskStatus.SUCCEEDED, result.output_tail
    report = json.loads(Path(t.log_path or "").read_text().splitlines()[-1])
    assert report["argv"] == argv  # the value is one argument; nothing else was added
    assert report["stdin"] == instructions  # on stdin, untouched
    assert (result.tokens, result.turns) == (1, 1)


@pytest.mark.parametrize(
    "step_type, changed, nothing",
    [
        (StepType.IMPLEMENT, [], True),
        (StepType.TEST, [], False),
        (StepType.DESIGN, [], True),
        (StepType.DOCUMENT, [], True),
        (StepType.RESEARCH, [], False),
        (StepType.REVIEW, [], False),
        (StepType.IMPLEMENT, ["a.py"], False),
        (StepType.IMPLEMENT, None, False),
        (None, [], False),
    ],
)
def test_changed_nothing(
    step_type: StepType | None, changed: list[str] | None, nothing: bool
) -> None:
    assert changed_nothing(step_type, changed) is nothing
