"""The gemini and aider kinds on the real tools' recorded outputs (tests/agents/recorded:
Gemini CLI 0.61.0 and Aider 0.86.2 against the loopback server; see its README)."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from directorate.actors.directive_file import load_directive_file
from directorate.verifiers.tools import DEFAULT_TABLE, Purpose, RunSettings, ToolReport, kind_named
from directorate.verifiers.tools.prices import Price, PriceTable

RECORDED = Path(__file__).resolve().parents[2] / "agents" / "recorded"
GEMINI = RunSettings(model="gemini-2.5-flash")
AIDER = RunSettings(model="gpt-4.1")


def read(
    tool: str, case: str, settings: RunSettings, prices: PriceTable = DEFAULT_TABLE
) -> ToolReport:
    folder = RECORDED / tool
    meta = json.loads((folder / f"{case}.json").read_text())
    assert meta["version"] == {"gemini": "0.61.0", "aider": "0.86.2"}[tool]
    return kind_named(tool).read(
        (folder / f"{case}.stdout").read_text(),
        (folder / f"{case}.stderr").read_text(),
        meta["returncode"],
        settings,
        prices,
    )


def test_every_recorded_case_is_in_a_table_below() -> None:
    for tool, cases in (("gemini", GEMINI_CASES), ("aider", AIDER_CASES)):
        recorded = {path.stem for path in (RECORDED / tool).glob("*.json")}
        assert recorded == {case[0] for case in cases}, tool


# Per model call the loopback server reports 1200 input and 80 output tokens.
FLASH_CALL = (1200 * 0.30 + 80 * 2.5) / 1e6  # gemini-2.5-flash's list price

# case, failure fragment (None: none), unavailable, calls (tokens, turns), denials, answer
GEMINI_CASES = [
    ("edit", None, False, 2, 0, "Wrote hello.py."),
    ("plan", None, False, 2, 0, "Plan written."),
    ("judge", None, False, 1, 0, "Here is my review."),
    ("resume", None, False, 1, 0, "second answer"),
    ("shell-refused", None, False, 2, 1, "I could not run it."),
    ("outside-denied", None, False, 2, 1, "Could not write there."),
    ("unauthorized", "401 UNAUTHENTICATED: invalid x-api-key", True, 0, 0, None),
    ("forbidden", "403 PERMISSION_DENIED: The caller does not have permission", True, 0, 0, None),
    ("no-key", "must specify the GEMINI_API_KEY", True, 0, 0, None),
    ("invalid-auth", "Invalid auth method selected.", True, 0, 0, None),
    ("untrusted", "not running in a trusted directory", True, 0, 0, None),
    ("not-logged-in", "Manual authorization is required", True, 0, 0, None),
    ("no-auth", "Please set an Auth method", True, 0, 0, None),
    ("resume-unknown", "Error resuming session", False, 0, 0, None),
]


@pytest.mark.parametrize(
    ("case", "failure", "unavailable", "calls", "denied", "answer"), GEMINI_CASES
)
def test_gemini_reads_each_recorded_case(
    case: str,
    failure: str | None,
    unavailable: bool,
    calls: int,
    denied: int,
    answer: str | None,
) -> None:
    report = read("gemini", case, GEMINI)
    if failure is None:
        assert report.failure is None
    else:
        assert report.failure is not None and failure in report.failure
        assert "\n" not in report.failure and "\x1b" not in report.failure
    assert (report.unavailable is not None) is unavailable
    if unavailable:
        assert report.unavailable == report.failure  # the tool's own words
    if answer is None:
        assert report.result is None
    else:
        assert report.result is not None and report.result.startswith(answer)
    assert report.denials == denied
    if calls:
        # Its tokens, priced by the table: Gemini reports no dollars.
        assert (report.tokens, report.turns) == (calls * 1280, calls)
        assert report.cost_usd == pytest.approx(calls * FLASH_CALL)
        assert report.cost_estimated and report.model == "gemini-2.5-flash"
    else:
        assert (report.tokens, report.cost_usd, report.turns) == (None, None, None)
    # A session id whenever it got as far as starting one (not before its checks).
    started = case not in ("untrusted", "resume-unknown", "not-logged-in")
    assert (report.session_id is not None) is started
    if started:
        assert report.session_id and len(report.session_id) == 36


def test_gemini_resume_reports_the_session_it_went_on_with() -> None:
    meta = json.loads((RECORDED / "gemini" / "resume.json").read_text())
    resumed = meta["argv"][meta["argv"].index("--resume") + 1]
    assert read("gemini", "resume", GEMINI).session_id == resumed


def test_gemini_with_a_model_the_table_lacks_has_tokens_but_no_cost() -> None:
    report = read("gemini", "edit", GEMINI, PriceTable({"gpt-5": Price(1.0, 2.0)}))
    assert report.tokens == 2560 and report.cost_usd is None and not report.cost_estimated
    assert report.cost_note and "gemini-2.5-flash" in report.cost_note


# case, failure fragment, unavailable, calls, denials, answer starts
AIDER_CASES = [
    ("edit", None, False, 2, 0, "app.py\nI will bump it."),
    ("retried", None, False, 2, 0, "app.py\nI will bump it."),
    ("plan", None, False, 1, 0, "Here is the plan."),
    ("plan-in-git", None, False, 1, 1, "Here is the plan."),
    ("judge", None, False, 1, 0, "Here is my review."),
    ("unauthorized", "Incorrect API key provided", True, 0, 0, None),
    ("no-key", "OPENAI_API_KEY", True, 0, 0, None),
    ("connection-refused", "Connection error.", True, 0, 0, None),
]


@pytest.mark.parametrize(
    ("case", "failure", "unavailable", "calls", "denied", "answer"), AIDER_CASES
)
def test_aider_reads_each_recorded_case(
    case: str,
    failure: str | None,
    unavailable: bool,
    calls: int,
    denied: int,
    answer: str | None,
) -> None:
    report = read("aider", case, AIDER)
    meta = json.loads((RECORDED / "aider" / f"{case}.json").read_text())
    assert meta["returncode"] == 0  # every case: failures included
    if failure is None:
        assert report.failure is None
    else:
        assert report.failure is not None and failure in report.failure
        assert report.failure.startswith("litellm.")
    assert (report.unavailable is not None) is unavailable
    if answer is None:
        assert report.result is None
    else:
        assert report.result is not None and report.result.startswith(answer)
    assert report.denials == denied
    assert report.session_id is None and report.model == "gpt-4.1"
    if calls:
        # Aider's own figures: tokens rounded to 1.2k a call, its session cost reported.
        assert (report.tokens, report.turns) == (calls * 1280, calls)
        assert report.cost_usd == pytest.approx({1: 0.0030, 2: 0.0061}[calls])
        assert not report.cost_estimated
    else:
        assert (report.tokens, report.cost_usd, report.turns) == (None, None, None)


def test_aider_judge_verdict_is_whole_in_its_answer() -> None:
    report = read("aider", "judge", AIDER)
    assert report.result is not None
    body = report.result.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(body)["score"] == 0.9


def test_aider_without_a_cost_line_is_priced_from_its_tokens() -> None:
    stdout = (RECORDED / "aider" / "edit.stdout").read_text()
    uncosted = "\n".join(line.split(" Cost:")[0] for line in stdout.splitlines())
    report = kind_named("aider").read(uncosted, "", 0, AIDER, DEFAULT_TABLE)
    assert report.cost_usd == pytest.approx((2400 * 2.0 + 160 * 8.0) / 1e6)  # gpt-4.1
    assert report.cost_estimated and report.tokens == 2560
    unknown = kind_named("aider").read(uncosted, "", 0, AIDER, PriceTable({}))
    assert unknown.cost_usd is None and unknown.cost_note and "gpt-4.1" in unknown.cost_note


def test_aider_an_error_after_its_last_call_fails_even_with_an_answer_before() -> None:
    stdout = (RECORDED / "aider" / "judge.stdout").read_text()
    broken = stdout + "\nlitellm.APIConnectionError: Connection refused\n"
    report = kind_named("aider").read(broken, "", 0, AIDER, DEFAULT_TABLE)
    assert report.failure == "litellm.APIConnectionError: Connection refused"
    assert report.unavailable == report.failure
    assert report.tokens == 1280  # what it spent before still counts


def test_aider_a_bad_request_fails_but_is_not_unavailable() -> None:
    stdout = "Aider v0.86.2\nlitellm.BadRequestError: context too long\n"
    report = kind_named("aider").read(stdout, "", 0, AIDER, DEFAULT_TABLE)
    assert report.failure and report.unavailable is None


NASTY = [
    ("", "", 1),
    ('{\n  "session_id": "x",\n  "stats": {"models": {', "", 0),  # truncated
    ("\x00\x00{not json\n\x00", "\x00boom", 1),
    ('{\n"session_id": "; rm -rf /",\n"response": 3}', "", 0),
    (
        '{\n"stats": {"models": {"m": {"tokens": {"prompt": 1e400, "candidates": -3}}}}}',
        "",
        0,
    ),
    ('{\n"stats": {"models": {"gemini-2.5-pro": {"tokens": {"prompt": 99999999999}}}}}', "", 0),
    ('{\n"stats": {"models": {"m": "x"}}, "error": "not an object"}', "", 0),
    (
        "Tokens: 1..2k sent, 9" + "9" * 5000 + " received.\nCost: $1.2.3 message, $4.5.6 session.",
        "",
        0,
    ),
    ("Tokens: 99999999k sent, 1 received. Cost: $0.01 message, $99999999999 session.", "", 0),
    ("litellm.AuthenticationError:", "", 0),
]


@pytest.mark.parametrize(("stdout", "stderr", "exit_code"), NASTY)
def test_bad_output_is_unknown_figures_never_an_exception(
    stdout: str, stderr: str, exit_code: int
) -> None:
    for name, settings in (("gemini", GEMINI), ("aider", AIDER)):
        report = kind_named(name).read(stdout, stderr, exit_code, settings, DEFAULT_TABLE)
        assert report.session_id is None
        assert report.tokens is None or 0 <= report.tokens <= 10**10
        assert report.cost_usd is None or 0 <= report.cost_usd <= 1_000_000
        assert report.turns is None or report.turns >= 0
        if exit_code:
            assert report.failure
        for text in (report.failure, report.result):
            assert text is None or "\x00" not in text


def test_gemini_error_that_is_not_an_object_still_fails() -> None:
    report = kind_named("gemini").read('{\n"error": "boom"\n}', "", 0, GEMINI, DEFAULT_TABLE)
    assert report.failure == "gemini reported an error"


ARGV = [
    (
        "gemini",
        Purpose.EDIT,
        RunSettings(),
        ["gemini", "--output-format", "json", "--skip-trust", "--approval-mode", "auto_edit"],
    ),
    (
        "gemini",
        Purpose.PLAN,
        RunSettings(keep_session=False, model="gemini-2.5-pro", extra_args=("--debug",)),
        [
            "gemini", "--output-format", "json", "--skip-trust", "--approval-mode", "auto_edit",
            "--model", "gemini-2.5-pro", "--debug",
        ],
    ),
    (
        "gemini",
        Purpose.EDIT,
        RunSettings(resume_session="s-1", executable=("/opt/gemini",)),
        [
            "/opt/gemini", "--output-format", "json", "--skip-trust", "--approval-mode",
            "auto_edit", "--resume", "s-1",
        ],
    ),
    (
        "gemini",
        Purpose.JUDGE,
        RunSettings(keep_session=False),
        ["gemini", "--output-format", "json", "--skip-trust", "--approval-mode", "default"],
    ),
]  # fmt: skip

AIDER_QUIET = [
    "--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-gitignore",
    "--no-check-update", "--no-show-release-notes", "--no-show-model-warnings", "--no-pretty",
    "--no-stream", "--no-analytics", "--no-suggest-shell-commands", "--no-detect-urls",
    "--chat-history-file", "/dev/null", "--input-history-file", "/dev/null", "--map-tokens", "0",
]  # fmt: skip


@pytest.mark.parametrize(("kind", "purpose", "settings", "argv"), ARGV)
def test_gemini_builds_its_argv(
    kind: str, purpose: Purpose, settings: RunSettings, argv: list[str], tmp_path: Path
) -> None:
    settings = attrs.evolve(settings, purpose=purpose)
    invocation = kind_named(kind).invocation(settings, tmp_path / "instructions.md", tmp_path)
    assert list(invocation.argv) == argv
    assert invocation.stdin


@pytest.mark.parametrize(
    ("purpose", "settings", "extra"),
    [
        (Purpose.EDIT, RunSettings(), []),
        (Purpose.EDIT, RunSettings(model="gpt-4.1", extra_args=("--map-tokens", "1024")),
         ["--model", "gpt-4.1", "--map-tokens", "1024"]),
        (Purpose.PLAN, RunSettings(keep_session=False), ["--no-git"]),
        (Purpose.JUDGE, RunSettings(model="o3"), ["--chat-mode", "ask", "--model", "o3"]),
        # No session to go on with: a rework starts afresh.
        (Purpose.EDIT, RunSettings(resume_session="s-1"), []),
    ],
)  # fmt: skip
def test_aider_builds_its_argv_and_takes_the_instructions_by_name(
    purpose: Purpose, settings: RunSettings, extra: list[str], tmp_path: Path
) -> None:
    instructions = tmp_path / "instructions.md"
    settings = attrs.evolve(settings, purpose=purpose)
    invocation = kind_named("aider").invocation(settings, instructions, tmp_path)
    assert list(invocation.argv) == [
        "aider", "--message-file", str(instructions), *AIDER_QUIET, *extra,
    ]  # fmt: skip
    assert not invocation.stdin
    assert invocation.env == {"COLUMNS": "100000"}


def test_resumes_as_each_tool_can() -> None:
    assert kind_named("gemini").resumes and not kind_named("aider").resumes


def test_gemini_session_files_are_its_project_folders_of_that_worktree(tmp_path: Path) -> None:
    home, worktree, other = tmp_path / "home", tmp_path / "wt" / "step-a", tmp_path / "mine"
    runtime = home / ".gemini"
    for folder in ("tmp/step-a/chats", "history/step-a", "tmp/mine/chats", "tmp/evil"):
        (runtime / folder).mkdir(parents=True)
    registry = {"projects": {str(worktree): "step-a", str(other): "mine", "/x": "../evil"}}
    (runtime / "projects.json").write_text(json.dumps(registry))
    gemini = kind_named("gemini")
    env = {"GEMINI_CLI_HOME": str(home), "HOME": "/nowhere"}
    assert gemini.session_files(env, worktree, ["s"]) == [
        runtime / "tmp" / "step-a",
        runtime / "history" / "step-a",
    ]
    assert gemini.session_files({"HOME": str(home)}, worktree, []) == [
        runtime / "tmp" / "step-a",
        runtime / "history" / "step-a",
    ]
    # A name that is a path never leads outside; no registry, a relative home: nothing.
    assert gemini.session_files(env, Path("/x"), []) == []
    assert gemini.session_files({"HOME": "relative"}, worktree, []) == []
    (runtime / "projects.json").write_text("{not json")
    assert gemini.session_files(env, worktree, []) == []


def test_aider_persists_nothing_to_clean(tmp_path: Path) -> None:
    assert kind_named("aider").session_files({"HOME": str(tmp_path)}, tmp_path, ["s"]) == []


REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("kind", "model"), [("gemini", "gemini-2.5-pro"), ("aider", "gpt-4.1")])
def test_the_examples_load_with_their_kind(kind: str, model: str) -> None:
    directive = load_directive_file(REPO / "examples" / kind / "directive.toml")
    assert directive.agent is not None
    assert (directive.agent.kind, directive.agent.model, directive.agent.command) == (
        kind,
        model,
        [],
    )
    assert DEFAULT_TABLE.price_for(model) is not None
