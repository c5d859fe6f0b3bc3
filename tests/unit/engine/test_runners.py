"""Task runners with real agent subprocesses: stdin, environment, result line, killing."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from directorate.actors import CallableRunner, CommandRunner, RunnerError
from directorate.persistence.models import Task, TaskKind, TaskStatus


def make_task(tmp_path: Path, instructions: str = "do the thing", **values: object) -> Task:
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "directive_id": uuid.uuid4(),
        "kind": TaskKind.STEP,
        "step_id": uuid.uuid4(),
        "attempt": 2,
        "instructions": instructions,
        "workdir": str(tmp_path),
        "log_path": str(tmp_path / "logs" / "task.log"),
        "plan_file": str(tmp_path / "plan.json"),
    }
    fields.update(values)
    return Task(**fields)  # type: ignore[arg-type]


def python(code: str, **kwargs: float) -> CommandRunner:
    return CommandRunner([sys.executable, "-c", code], **kwargs)


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_instructions_on_stdin_environment_and_json_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine's own DIRECTORATE_* variables never reach the agent: only the task's.
    monkeypatch.setenv("DIRECTORATE_DSN", "postgresql://u:secret@h/db")
    monkeypatch.setenv("DIRECTORATE_HOME", str(tmp_path / "home"))
    agent = python(
        "import json, os, sys\n"
        "text = sys.stdin.read()\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith('DIRECTORATE_')}\n"
        "print('working')\n"
        "print(json.dumps({'cost_usd': 0.25, 'summary': text.upper(), 'env': env,"
        " 'cwd': os.getcwd()}))\n"
    )
    task = make_task(tmp_path, instructions="fix $(rm -rf /) it; `echo no`")
    result = agent.run(task, threading.Event())
    assert result.status is TaskStatus.SUCCEEDED and result.exit_code == 0
    assert result.cost_usd == 0.25
    assert result.summary == "FIX $(RM -RF /) IT; `ECHO NO`"
    report = json.loads(Path(task.log_path or "").read_text().splitlines()[-1])
    assert report["cwd"] == str(tmp_path)
    assert report["env"] == {
        "DIRECTORATE_DIRECTIVE_ID": str(task.directive_id),
        "DIRECTORATE_STEP_ID": str(task.step_id),
        "DIRECTORATE_TASK_ID": str(task.id),
        "DIRECTORATE_TASK_KIND": "step",
        "DIRECTORATE_ATTEMPT": "2",
        "DIRECTORATE_PLAN_FILE": str(tmp_path / "plan.json"),
        "DIRECTORATE_BUDGET_USD": "",  # no dollar limit
    }
    assert "working" in result.output_tail


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("import sys; sys.exit(3)", TaskStatus.FAILED),
        ("print('{\"success\": false, \"total_cost_usd\": 1.5}')", TaskStatus.FAILED),
        ("print('{\"result\": \"done\", \"total_cost_usd\": 1.5}')", TaskStatus.SUCCEEDED),
    ],
)
def test_exit_status_and_reported_success_decide(
    tmp_path: Path, code: str, status: TaskStatus
) -> None:
    result = python(code).run(make_task(tmp_path), threading.Event())
    assert result.status is status
    if "cost" in code:
        assert result.cost_usd == 1.5


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    agent = python(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n",
        timeout_s=1.0,
        kill_grace_s=0.2,
    )
    started = time.monotonic()
    result = agent.run(make_task(tmp_path), threading.Event())
    assert result.status is TaskStatus.TIMED_OUT
    assert time.monotonic() - started < 5
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)


def test_cancel_stops_the_agent_at_once(tmp_path: Path) -> None:
    cancel = threading.Event()
    agent = python("import time; time.sleep(60)", kill_grace_s=0.2)
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    result = agent.run(make_task(tmp_path), cancel)
    assert result.status is TaskStatus.CANCELLED
    assert time.monotonic() - started < 5


def test_leftovers_of_a_finished_agent_are_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "leftover.pid"
    agent = python(
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
    )
    assert agent.run(make_task(tmp_path), threading.Event()).status is TaskStatus.SUCCEEDED
    leftover = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(leftover) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(leftover)


def test_output_tail_is_bounded_and_cleaned(tmp_path: Path) -> None:
    agent = python(
        "import sys\n"
        "sys.stdout.write('x' * 1_000_000)\n"
        "sys.stdout.buffer.write(b'\\nbad \\xff\\x00 bytes\\nTHE END\\n')\n"
        "sys.stderr.write('complaint\\n')\n"
    )
    task = make_task(tmp_path)
    result = agent.run(task, threading.Event())
    assert len(result.output_tail) <= 16_384
    assert "THE END" in result.output_tail and "complaint" in result.output_tail
    assert "\x00" not in result.output_tail and "\ufffd" in result.output_tail
    assert Path(task.log_path or "").stat().st_size > 1_000_000  # the log keeps it all


def test_missing_agent_is_a_failed_task_not_a_crash(tmp_path: Path) -> None:
    result = CommandRunner(["no-such-agent-xyz"]).run(make_task(tmp_path), threading.Event())
    assert result.status is TaskStatus.FAILED
    assert result.error is not None and "no-such-agent-xyz" in result.error


def test_large_instructions_do_not_deadlock_an_agent_that_never_reads(tmp_path: Path) -> None:
    agent = python("print('{\"summary\": \"ignored stdin\"}')", timeout_s=10)
    result = agent.run(make_task(tmp_path, instructions="y" * 5_000_000), threading.Event())
    assert result.status is TaskStatus.SUCCEEDED and result.summary == "ignored stdin"


@pytest.mark.parametrize("argv", [[], "claude -p", ["claude", 3]])
def test_bad_agent_command_is_refused(argv: object) -> None:
    with pytest.raises(RunnerError):
        CommandRunner(argv)  # type: ignore[arg-type]


def test_callable_runner_reports_values_and_errors(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    ok = CallableRunner(lambda t, c: {"cost_usd": 0.5, "summary": t.instructions})
    result = ok.run(task, threading.Event())
    assert (result.status, result.cost_usd, result.summary) == (
        TaskStatus.SUCCEEDED,
        0.5,
        "do the thing",
    )

    def explode(task: Task, cancel: threading.Event) -> None:
        raise ValueError("agent exploded")

    failed = CallableRunner(explode).run(task, threading.Event())
    assert failed.status is TaskStatus.FAILED and "agent exploded" in (failed.error or "")
    refused = CallableRunner(lambda t, c: {"success": False}).run(task, threading.Event())
    assert refused.status is TaskStatus.FAILED


def test_the_log_directory_is_created(tmp_path: Path) -> None:
    task = make_task(tmp_path, log_path=str(tmp_path / "deep" / "er" / "t.log"))
    python("print('hi')").run(task, threading.Event())
    assert (tmp_path / "deep" / "er" / "t.log").read_text().strip() == "hi"
    assert os.path.exists(tmp_path / "deep" / "er" / "t.log.stderr")


def test_a_long_report_line_still_gives_cost_and_summary(tmp_path: Path) -> None:
    agent = python(
        "import json\n"
        "print(json.dumps({'type': 'result', 'result': 'x' * 100_000, 'total_cost_usd': 7.5}))\n"
    )
    result = agent.run(make_task(tmp_path), threading.Event())
    assert result.cost_usd == 7.5
    assert result.summary is not None and result.summary.startswith("xxx")
