"""The clean agent environment: a real agent subprocess sees only the base variables,
what the directive passes and sets, and the task variables; passed secrets are masked."""

from __future__ import annotations

import json
import sys
import threading
import uuid
from pathlib import Path

import pytest

from directorate.actors import CommandRunner, RunnerError
from directorate.actors.runners import runner_for
from directorate.persistence.convert import structure_spec
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import AgentSpec, Task, TaskKind, TaskStatus
from directorate.verifiers.environment import CleanEnvironment, mask, mask_file

ENGINE_SECRETS = {
    "DIRECTORATE_DSN": "postgresql://u:secret-dsn-pw@h/db",
    "DIRECTORATE_HOME": "/srv/directorate",
    "PGPASSWORD": "pg-secret-pw",
    "PGHOST": "db.internal",
    "GITHUB_TOKEN": "ghp_unlisted_token",
    "OPENAI_API_KEY": "sk-openai-unlisted",
    "AWS_SECRET_ACCESS_KEY": "aws-unlisted-secret",
}
PASSED_KEY = "sk-ant-passed-secret-0123456789"

#: an agent that prints its whole environment, then a report quoting the passed key
DUMP_ENV = (
    "import json, os\n"
    "print(json.dumps(dict(os.environ)))\n"
    "print('key is', os.environ.get('ANTHROPIC_API_KEY'))\n"
    "print('reversed', os.environ.get('ANTHROPIC_API_KEY', '')[::-1])\n"
    "print(json.dumps({'summary': 'used ' + os.environ.get('ANTHROPIC_API_KEY', '-')}))\n"
)


@pytest.fixture
def engine_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENGINE_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ANTHROPIC_API_KEY", PASSED_KEY)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("HOME", "/home/agent-test")


def make_task(tmp_path: Path) -> Task:
    return Task(
        id=uuid.uuid4(),
        directive_id=uuid.uuid4(),
        kind=TaskKind.STEP,
        step_id=uuid.uuid4(),
        attempt=1,
        instructions="dump your environment",
        workdir=str(tmp_path),
        log_path=str(tmp_path / "logs" / "task.log"),
        plan_file=str(tmp_path / "plan.json"),
    )


def agent_env(task: Task) -> dict[str, str]:
    first = Path(task.log_path or "").read_text().splitlines()[0]
    env: dict[str, str] = json.loads(first)
    return env


def test_agent_gets_only_base_passed_set_and_task_variables(
    tmp_path: Path, engine_env: None
) -> None:
    spec = AgentSpec(
        command=[sys.executable, "-c", DUMP_ENV],
        env={"CI": "1", "MY_SETTING": "on"},
        pass_env=["ANTHROPIC_API_KEY", "NOT_SET_IN_ENGINE"],
    )
    runner = runner_for(spec, None)
    task = make_task(tmp_path)
    result = runner.run(task, threading.Event())
    assert result.status is TaskStatus.SUCCEEDED, result.output_tail
    env = agent_env(task)
    for name in ENGINE_SECRETS:
        assert name not in env
    assert not [name for name in env if name.startswith("PG")]
    assert (env["CI"], env["MY_SETTING"]) == ("1", "on")
    assert env["ANTHROPIC_API_KEY"] == "***"  # masked in the log
    assert f"reversed {PASSED_KEY[::-1]}" in result.output_tail  # the agent had it
    assert "NOT_SET_IN_ENGINE" not in env
    assert env["HOME"] == "/home/agent-test" and env["LC_ALL"] == "C.UTF-8"
    assert "PATH" in env
    assert env["DIRECTORATE_TASK_ID"] == str(task.id)
    allowed = {"CI", "MY_SETTING", "ANTHROPIC_API_KEY"}
    extra = {
        name
        for name in env
        if name not in allowed
        and name not in CleanEnvironment().build()
        and not name.startswith("DIRECTORATE_")
    }
    # Python itself may add a variable or two (LC_CTYPE coercion); nothing from the engine.
    assert extra <= {"LC_CTYPE"}, extra
    assert {n for n in env if n.startswith("DIRECTORATE_")} == {
        "DIRECTORATE_DIRECTIVE_ID",
        "DIRECTORATE_STEP_ID",
        "DIRECTORATE_TASK_ID",
        "DIRECTORATE_TASK_KIND",
        "DIRECTORATE_ATTEMPT",
        "DIRECTORATE_PLAN_FILE",
        "DIRECTORATE_BUDGET_USD",
    }


def test_passed_secrets_are_masked_in_the_result_and_the_log(
    tmp_path: Path, engine_env: None
) -> None:
    code = DUMP_ENV + "import sys; print('err', os.environ['ANTHROPIC_API_KEY'], file=sys.stderr)\n"
    runner = CommandRunner([sys.executable, "-c", code], pass_env=["ANTHROPIC_API_KEY"])
    task = make_task(tmp_path)
    result = runner.run(task, threading.Event())
    assert result.status is TaskStatus.SUCCEEDED
    assert PASSED_KEY not in result.output_tail
    assert "key is ***" in result.output_tail and "err ***" in result.output_tail
    assert result.summary == "used ***"
    log = Path(task.log_path or "")
    assert PASSED_KEY not in log.read_text()
    assert PASSED_KEY not in log.with_name(log.name + ".stderr").read_text()
    assert '"ANTHROPIC_API_KEY": "***"' in log.read_text()


def test_an_unpassed_engine_secret_is_not_there_to_leak(tmp_path: Path, engine_env: None) -> None:
    code = "import os; print(os.environ.get('OPENAI_API_KEY', 'absent'))"
    result = CommandRunner([sys.executable, "-c", code]).run(make_task(tmp_path), threading.Event())
    assert result.output_tail == "absent"


def test_agent_spec_env_fields_are_checked() -> None:
    base = {"title": "t", "goal": "g"}
    spec = structure_spec(
        {**base, "agent": {"command": ["a"], "env": {"X": "1"}, "pass_env": ["ANTHROPIC_API_KEY"]}}
    )
    assert spec.agent is not None
    assert (spec.agent.env, spec.agent.pass_env) == ({"X": "1"}, ["ANTHROPIC_API_KEY"])
    bad = [
        ({"env": {"X": 1}}, "agent.env.X: expected a string"),
        ({"env": {"A B": "1"}}, "not an environment variable name"),
        ({"env": {"X": "a\x00b"}}, "agent.env.X: contains a NUL byte"),
        ({"env": ["X"]}, "agent.env"),
        ({"pass_env": "X"}, "agent.pass_env: expected a list of strings"),
        ({"pass_env": ["1X"]}, "agent.pass_env[0]: '1X' is not an environment variable name"),
        ({"pass_env": ["DIRECTORATE_DSN"]}, "agent.pass_env[0]: DIRECTORATE_*"),
        ({"env": {"DIRECTORATE_HOME": "/x"}}, "agent.env.DIRECTORATE_HOME: DIRECTORATE_*"),
    ]
    for extra, message in bad:
        with pytest.raises(InvalidInput) as caught:
            structure_spec({**base, "agent": {"command": ["a"], **extra}})
        assert message in str(caught.value), (extra, str(caught.value))


def test_command_runner_refuses_bad_names() -> None:
    with pytest.raises(RunnerError, match="not an environment variable name"):
        CommandRunner(["true"], pass_env=["A-B"])
    with pytest.raises(RunnerError, match="engine's own"):
        CommandRunner(["true"], env={"DIRECTORATE_DSN": "x"})


def test_mask_file_finds_secrets_across_read_boundaries(tmp_path: Path) -> None:
    import directorate.verifiers.environment as environment

    secret = "0123456789abcdef"
    text = ("x" * 5 + secret + "y" * 3) * 50 + "short secret"
    path = tmp_path / "log"
    path.write_text(text)
    old = environment._CHUNK
    environment._CHUNK = 7  # smaller than the secret: every match crosses reads
    try:
        mask_file(path, [secret, "tiny"])
    finally:
        environment._CHUNK = old
    assert path.read_text() == mask(text, [secret])
    assert secret not in path.read_text() and path.read_text().count("***") == 50
