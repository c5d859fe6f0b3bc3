"""The claude-code, codex and command kinds on the real tools' recorded outputs
(tests/agents/recorded: claude 2.1.332 and codex 0.171.0 against the loopback server)."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from directorate.verifiers.tools import DEFAULT_TABLE, Purpose, RunSettings, ToolReport, kind_named
from directorate.verifiers.tools.prices import Price, PriceTable, parse_prices

RECORDED = Path(__file__).resolve().parents[2] / "agents" / "recorded"
CODEX = RunSettings(model="gpt-5.5")


def read(tool: str, case: str, settings: RunSettings | None = None) -> ToolReport:
    folder = RECORDED / tool
    meta = json.loads((folder / f"{case}.json").read_text())
    kind = kind_named("claude-code" if tool == "claude" else "codex")
    return kind.read(
        (folder / f"{case}.stdout").read_text(),
        (folder / f"{case}.stderr").read_text(),
        meta["returncode"],
        settings or RunSettings(),
        DEFAULT_TABLE,
    )


# case, failure fragment (None: no failure), unavailable, tokens, turns, denials, result
CLAUDE = [
    ("edit", None, False, 2560, 2, 0, "Wrote hello.py."),
    ("plan", None, False, 2560, 2, 0, "Plan written."),
    ("permission-denied", None, False, 2560, 2, 1, "I could not run it."),
    ("edit-outside-denied", None, False, 2560, 2, 1, "Could not write the plan."),
    ("max-turns", "maximum number of turns", False, 1280, 2, 0, None),
    ("max-budget", "maximum budget", False, 1280, 2, 0, None),
    ("not-logged-in", "Not logged in", True, 0, 1, 0, "Not logged in · Please run /login"),
    ("unauthorized", "Invalid API key", True, 0, 1, 0, "Invalid API key · Fix external API key"),
]


@pytest.mark.parametrize(
    ("case", "failure", "unavailable", "tokens", "turns", "denied", "result"), CLAUDE
)
def test_claude_code_reads_each_recorded_case(
    case: str,
    failure: str | None,
    unavailable: bool,
    tokens: int,
    turns: int,
    denied: int,
    result: str | None,
) -> None:
    report = read("claude", case)
    if failure is None:
        assert report.failure is None
    else:
        assert report.failure is not None and failure in report.failure
    assert (report.unavailable is not None) is unavailable
    assert (report.tokens, report.turns, report.denials, report.result) == (
        tokens,
        turns,
        denied,
        result,
    )
    assert report.session_id and not report.cost_estimated
    assert report.cost_usd is not None and report.cost_usd >= 0


# case, failure fragment, unavailable, tokens, answer
CODEX_CASES = [
    ("edit", None, False, 2560, "Bumped the version."),
    ("plan", None, False, 2560, "Plan written."),
    ("shell", None, False, 2560, "Made it."),
    ("sandbox-denied", None, False, 2560, "Could not write there."),
    ("resume", None, False, 2560, "second answer"),
    ("unauthorized", "401 Unauthorized", True, None, None),
    ("no-key", "OPENAI_API_KEY", True, None, None),
]


@pytest.mark.parametrize(("case", "failure", "unavailable", "tokens", "answer"), CODEX_CASES)
def test_codex_reads_each_recorded_case(
    case: str, failure: str | None, unavailable: bool, tokens: int | None, answer: str | None
) -> None:
    report = read("codex", case, CODEX)
    if failure is None:
        assert report.failure is None
        # 2400 input + 160 output at gpt-5's list price: priced, not reported.
        assert report.cost_usd == pytest.approx((2400 * 1.25 + 160 * 10.0) / 1e6)
        assert report.cost_estimated
    else:
        assert report.failure is not None and failure in report.failure
        assert report.cost_usd is None
    assert (report.unavailable is not None) is unavailable
    assert (report.tokens, report.result) == (tokens, answer)
    assert report.session_id and report.session_id.startswith("01a23abe")


def test_codex_without_a_known_model_has_tokens_but_an_unknown_cost() -> None:
    report = read("codex", "edit", RunSettings(model="house-model"))
    assert report.tokens == 2560 and report.cost_usd is None
    assert report.cost_note and "house-model" in report.cost_note


@pytest.mark.parametrize(
    ("stdout", "exit_code"),
    [
        ("", 1),
        ("{not json\n\x00\x00", 1),
        ('{"type":"turn.completed","usage":{"input_tokens":1e400,"output_tokens":-3}}', 0),
        ('{"type":"thread.started","thread_id":"; rm -rf /"}', 0),
    ],
)
def test_bad_output_is_unknown_figures_never_an_exception(stdout: str, exit_code: int) -> None:
    for name in ("claude-code", "codex", "command"):
        report = kind_named(name).read(stdout, "boom", exit_code, CODEX, DEFAULT_TABLE)
        assert report.session_id is None
        assert report.tokens is None or report.tokens >= 0
        if exit_code and name != "command":
            assert report.failure


ARGV = [
    (
        "claude-code",
        Purpose.EDIT,
        RunSettings(),
        ["claude", "-p", "--output-format", "json", "--permission-mode", "acceptEdits"],
    ),
    (
        "claude-code",
        Purpose.PLAN,
        RunSettings(
            keep_session=False, model="opus", budget_usd=1.239, extra_args=("--max-turns", "9")
        ),
        [
            "claude",
            "-p",
            "--output-format",
            "json",
            "--permission-mode",
            "acceptEdits",
            "--model",
            "opus",
            "--max-budget-usd",
            "1.24",
            "--no-session-persistence",
            "--max-turns",
            "9",
        ],
    ),
    (
        "claude-code",
        Purpose.EDIT,
        RunSettings(resume_session="abc-1", executable=("/opt/claude",)),
        [
            "/opt/claude",
            "-p",
            "--output-format",
            "json",
            "--permission-mode",
            "acceptEdits",
            "--resume",
            "abc-1",
        ],
    ),
    (
        "claude-code",
        Purpose.JUDGE,
        RunSettings(keep_session=False),
        [
            "claude",
            "-p",
            "--output-format",
            "json",
            "--permission-mode",
            "default",
            "--no-session-persistence",
        ],
    ),
    (
        "codex",
        Purpose.EDIT,
        RunSettings(),
        ["codex", "exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write", "-"],
    ),
    (
        "codex",
        Purpose.EDIT,
        RunSettings(resume_session="t-1", model="gpt-5.5"),
        [
            "codex",
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--sandbox",
            "workspace-write",
            "--model",
            "gpt-5.5",
            "resume",
            "t-1",
            "-",
        ],
    ),
    (
        "codex",
        Purpose.JUDGE,
        RunSettings(keep_session=False),
        [
            "codex",
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--sandbox",
            "read-only",
            "--ephemeral",
            "-",
        ],
    ),
    (
        "command",
        Purpose.EDIT,
        RunSettings(executable=("agent", "-x"), extra_args=("--y",)),
        ["agent", "-x", "--y"],
    ),
]


@pytest.mark.parametrize(("kind", "purpose", "settings", "argv"), ARGV)
def test_each_kind_builds_its_argv(
    kind: str, purpose: Purpose, settings: RunSettings, argv: list[str], tmp_path: Path
) -> None:
    settings = attrs.evolve(settings, purpose=purpose)
    invocation = kind_named(kind).invocation(settings, tmp_path / "instructions.md", tmp_path)
    assert list(invocation.argv) == argv
    assert invocation.stdin


def test_an_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown agent kind .cursor. \(known: .*claude-code"):
        kind_named("cursor")


def test_prices_match_the_longest_prefix_and_overrides_win() -> None:
    table = PriceTable({"gpt-5": Price(1.0, 10.0), "gpt-5.5": Price(2.0, 20.0)})
    assert table.price_for("gpt-5.5-codex") == Price(2.0, 20.0)
    assert table.price_for("openai/gpt-5-mini") == Price(1.0, 10.0)
    assert table.price_for("llama") is None
    cheaper = table.with_overrides(parse_prices({"gpt-5.5": {"input": 0.5, "output": 1}}, "p"))
    assert cheaper.cost("gpt-5.5", 1_000_000, 1_000_000) == (1.5, None)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([], "must be a table"),
        ({"m": {"input": 1}}, "output is missing"),
        ({"m": {"input": -1, "output": 1}}, "between 0"),
        ({"m": {"input": float("nan"), "output": 1}}, "between 0"),
        ({"m": {"input": True, "output": 1}}, "must be a number"),
        ({"m": {"input": 1, "output": 1, "per": 2}}, "unknown key 'per'"),
    ],
)
def test_a_bad_price_table_is_one_clear_line(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as raised:
        parse_prices(value, "agent.prices")
    assert str(raised.value).startswith("agent.prices") and "\n" not in str(raised.value)
