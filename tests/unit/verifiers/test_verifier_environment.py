"""Verifier commands and judges run in a clean environment; passed secrets are masked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from verifier_helpers import PY

from directorate.verifiers import (
    CommandVerifier,
    InvalidVerifierConfig,
    LlmVerifier,
    VerificationContext,
    build_verifiers,
)

ENGINE_SECRETS = {
    "DIRECTORATE_DSN": "postgresql://u:secret@h/db",
    "DIRECTORATE_HOME": "/srv/directorate",
    "PGPASSWORD": "pg-secret-pw",
    "GITHUB_TOKEN": "ghp_unlisted_token",
    "OPENAI_API_KEY": "sk-openai-unlisted",
    "AWS_SECRET_ACCESS_KEY": "aws-unlisted-secret",
}
NPM_TOKEN = "npm-passed-token-0123456789"
DUMP = "import json, os; print(json.dumps(dict(os.environ)))"


@pytest.fixture(autouse=True)
def engine_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENGINE_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NPM_TOKEN", NPM_TOKEN)


def dumped(output: str) -> dict[str, Any]:
    env: dict[str, Any] = json.loads(output.splitlines()[0])
    return env


def test_command_verifier_gets_no_engine_secrets(tmp_path: Path, ctx: VerificationContext) -> None:
    result = CommandVerifier("env", [PY, "-c", DUMP], env={"CI": "1"}).verify(tmp_path, ctx)
    env = dumped(result.output)
    assert not set(ENGINE_SECRETS) & set(env)
    assert "NPM_TOKEN" not in env and env["CI"] == "1" and "PATH" in env


def test_passed_variables_reach_the_check_and_are_masked(
    tmp_path: Path, ctx: VerificationContext
) -> None:
    code = DUMP + "; print('token', os.environ['NPM_TOKEN'][::-1], os.environ['NPM_TOKEN'])"
    settings = {
        "auto_detect": False,
        "pass_env": ["NPM_TOKEN"],
        "env": {"CI": "1", "SHARED": "yes"},
        "command": [{"name": "env", "run": [PY, "-c", code], "env": {"SHARED": "mine"}}],
    }
    [verifier] = build_verifiers(settings, tmp_path)
    result = verifier.verify(tmp_path, ctx)
    env = dumped(result.output)
    assert not set(ENGINE_SECRETS) & set(env)
    assert (env["NPM_TOKEN"], env["CI"], env["SHARED"]) == ("***", "1", "mine")
    assert f"token {NPM_TOKEN[::-1]} ***" in result.output
    assert NPM_TOKEN not in result.output


def test_judge_command_gets_a_clean_environment_and_masked_answer(
    tmp_path: Path, ctx: VerificationContext
) -> None:
    script = tmp_path / "judge.py"
    script.write_text(
        "import json, os, sys\n"
        "sys.stdin.read()\n"
        f"leaked = sorted(n for n in os.environ if n in {sorted(ENGINE_SECRETS)!r})\n"
        "print(json.dumps({'passed': True, 'score': 1.0, 'criteria': [],"
        " 'feedback': 'token ' + os.environ.get('NPM_TOKEN', '-') + ' leaked ' + repr(leaked)}))\n"
    )
    settings = {
        "auto_detect": False,
        "pass_env": ["NPM_TOKEN"],
        "llm": {"command": [PY, str(script)]},
    }
    [judge] = build_verifiers(settings, tmp_path)
    assert isinstance(judge, LlmVerifier)
    result = judge.verify(tmp_path, ctx)
    assert result.score == 1.0, result.details
    assert result.output == "token *** leaked []"


def test_auto_detected_checks_get_the_shared_settings(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("test:\n\ttrue\n")
    settings = {"pass_env": ["NPM_TOKEN"], "env": {"CI": "1"}}
    found = [v for v in build_verifiers(settings, tmp_path) if v.name == "make-test"]
    if not found:
        pytest.skip("make is not on PATH")
    [make] = found
    assert isinstance(make, CommandVerifier)
    assert (make.pass_env, make.env) == (["NPM_TOKEN"], {"CI": "1"})


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"pass_env": "NPM_TOKEN"}, "verifiers.pass_env: must be a list"),
        ({"pass_env": ["A-B"]}, "verifiers.pass_env[0]: 'A-B' is not an environment"),
        ({"pass_env": ["DIRECTORATE_DSN"]}, "verifiers.pass_env[0]: DIRECTORATE_DSN"),
        ({"env": {"X": 1}}, "verifiers.env: must be a table of strings"),
        ({"env": {"X": "a\x00"}}, "verifiers.env.X: contains a NUL byte"),
        ({"env": ["X"]}, "verifiers.env: must be a table of strings"),
        (
            {"command": [{"name": "x", "run": "true", "env": {"1X": "1"}}]},
            "verifiers.command[0].env: '1X' is not an environment",
        ),
    ],
)
def test_environment_settings_are_checked(tmp_path: Path, settings: Any, message: str) -> None:
    with pytest.raises(InvalidVerifierConfig) as caught:
        build_verifiers({"auto_detect": False, **settings}, tmp_path)
    assert str(caught.value).startswith(message), str(caught.value)
