"""CommandVerifier and the bounded subprocess runner, with real processes."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import pytest
from verifier_helpers import PY, process_gone

from directorate.verifiers import CommandVerifier, VerificationContext, VerifierType
from directorate.verifiers.process import LINGER_S, MAX_OUTPUT_BYTES, run_bounded


def py(code: str) -> list[str]:
    return [PY, "-c", code]


def test_exit_zero_passes_with_score_one(tmp_path: Path, ctx: VerificationContext) -> None:
    result = CommandVerifier("ok", py("print('hello')"), verifier_type="test").verify(tmp_path, ctx)
    assert (result.passed, result.score, result.verifier_type) == (True, 1.0, VerifierType.TEST)
    assert result.output == "hello\n"
    assert result.details["exit_code"] == 0


def test_exit_one_fails_and_keeps_stderr(tmp_path: Path, ctx: VerificationContext) -> None:
    code = "import sys; print('out'); print('boom', file=sys.stderr); sys.exit(1)"
    result = CommandVerifier("bad", py(code)).verify(tmp_path, ctx)
    assert (result.passed, result.score) == (False, 0.0)
    assert "out" in result.output and "boom" in result.output
    assert result.details["exit_code"] == 1


def test_string_command_is_split_not_given_to_a_shell(
    tmp_path: Path, ctx: VerificationContext
) -> None:
    result = CommandVerifier("echo", "echo 'a b' $HOME; true").verify(tmp_path, ctx)
    assert result.passed
    assert result.output.strip() == "a b $HOME; true"


def test_runs_in_repo_or_cwd_with_extra_env(tmp_path: Path, ctx: VerificationContext) -> None:
    (tmp_path / "sub").mkdir()
    code = "import os; print(os.getcwd()); print(os.environ['EXTRA'], 'PATH' in os.environ)"
    verifier = CommandVerifier("where", py(code), cwd="sub", env={"EXTRA": "yes"})
    lines = verifier.verify(tmp_path, ctx).output.splitlines()
    assert Path(lines[0]) == (tmp_path / "sub").resolve()
    assert lines[1] == "yes True"


#: a process that never ends by itself
FOREVER = [PY, "-c", "import time\nwhile True: time.sleep(3600)"]


def spawner(pid_file: Path, *, grandchild_output: str, then: str) -> list[str]:
    """A command that starts a FOREVER grandchild, writes "<its pid> <grandchild pid>" to
    ``pid_file``, prints "started" and runs ``then``."""
    code = (
        "import os, subprocess, sys, time\n"
        f"p = subprocess.Popen({FOREVER!r}, stdout={grandchild_output})\n"
        f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{p.pid}}')\n"
        "print('started', flush=True)\n"
        f"{then}\n"
    )
    return py(code)


@pytest.mark.parametrize(
    "grandchild_output",
    [
        pytest.param("None", id="grandchild-holds-the-pipe"),
        pytest.param("subprocess.DEVNULL", id="grandchild-detached-from-the-pipe"),
    ],
)
def test_timeout_kills_the_command_and_its_grandchild(
    tmp_path: Path, ctx: VerificationContext, grandchild_output: str
) -> None:
    pid_file = tmp_path / "pids"
    argv = spawner(pid_file, grandchild_output=grandchild_output, then="time.sleep(3600)")
    started = time.monotonic()
    result = CommandVerifier("hang", argv, timeout_s=1.0).verify(tmp_path, ctx)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.0 + 1.5  # the timeout, plus a short grace
    assert not result.passed and result.details["timed_out"] is True
    assert result.details["exit_code"] is None
    assert "started" in result.output and "timed out after 1 s" in result.output
    child, grandchild = map(int, pid_file.read_text().split())
    assert process_gone(child) and process_gone(grandchild)


def test_background_grandchild_does_not_hold_up_a_finished_command(
    tmp_path: Path, ctx: VerificationContext
) -> None:
    pid_file = tmp_path / "pids"
    argv = spawner(pid_file, grandchild_output="None", then="print('done')")
    started = time.monotonic()
    result = CommandVerifier("bg", argv, timeout_s=30).verify(tmp_path, ctx)
    assert time.monotonic() - started < LINGER_S + 2.0
    assert result.passed and result.details["timed_out"] is False
    assert result.output == "started\ndone\n"
    assert process_gone(int(pid_file.read_text().split()[1]))


def test_output_is_bounded_and_keeps_the_tail(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "for i in range(200_000): sys.stdout.write(f'line {i:06d}\\n')\n"
        "print('THE END')\n"
    )
    done = run_bounded(py(code), cwd=tmp_path, timeout_s=30, max_output_bytes=4096)
    assert done.exit_code == 0
    assert done.output.endswith("THE END\n")
    assert "line 000000" not in done.output
    assert done.output.startswith("[... ") and "bytes omitted" in done.output
    assert len(done.output) < 4096 + 100


def test_fifty_megabytes_of_output_are_captured_bounded(
    tmp_path: Path, ctx: VerificationContext
) -> None:
    total = 50 * 1024 * 1024 + len(b"THE END\n")
    code = (
        "import sys\n"
        "line = b'y' * 1023 + b'\\n'\n"
        "for _ in range(50 * 1024): sys.stdout.buffer.write(line)\n"
        "sys.stdout.buffer.write(b'THE END\\n')\n"
    )
    started = time.monotonic()
    result = CommandVerifier("loud", py(code), timeout_s=60).verify(tmp_path, ctx)
    assert time.monotonic() - started < 15.0
    assert result.passed and result.details["timed_out"] is False
    head, kept = result.output.split("\n", 1)
    assert head == f"[... {total - MAX_OUTPUT_BYTES} bytes omitted ...]"
    assert len(kept) == MAX_OUTPUT_BYTES
    assert kept.endswith("y\nTHE END\n")


def test_bad_utf8_replaced_and_nul_removed(tmp_path: Path, ctx: VerificationContext) -> None:
    code = "import sys; sys.stdout.buffer.write(b'ok\\xff\\xfe\\x00done\\n')"
    result = CommandVerifier("bytes", py(code)).verify(tmp_path, ctx)
    assert result.output == "ok\ufffd\ufffddone\n"


def test_missing_executable_is_a_failed_result(tmp_path: Path, ctx: VerificationContext) -> None:
    result = CommandVerifier("nope", ["no-such-tool-xyz", "--flag"]).verify(tmp_path, ctx)
    assert not result.passed and result.score == 0.0
    assert "no-such-tool-xyz" in result.output
    assert "No such file" in result.output


def test_stdin_is_fed_even_when_large(tmp_path: Path) -> None:
    data = b"x" * 500_000  # several pipe buffers: writing must not block reading
    # it writes a lot before reading: feeding and collecting must interleave
    code = "import sys; print('y' * 300000, flush=True); print(len(sys.stdin.buffer.read()))"
    done = run_bounded(py(code), cwd=tmp_path, timeout_s=30, stdin=data)
    assert done.exit_code == 0
    assert done.output.splitlines()[-1] == "500000"


def test_a_command_that_ignores_stdin_is_not_an_error(tmp_path: Path) -> None:
    done = run_bounded(["true"], cwd=tmp_path, timeout_s=30, stdin=b"z" * 1_000_000)
    assert done.exit_code == 0 and not done.timed_out


PYTEST_SUITE = """
def test_one(): assert True
def test_two(): assert True
def test_three(): assert True
def test_four(): assert False
"""


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_suite.py").write_text(PYTEST_SUITE)
    return project


def test_junit_report_gives_fraction_passed(suite: Path, ctx: VerificationContext) -> None:
    argv = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=out/report.xml"]
    result = CommandVerifier("pytest", argv, verifier_type="test").verify(suite, ctx)
    assert result.passed is False
    assert result.score == 0.75
    assert result.details["junit"] == {"passed": 3, "failed": 1, "skipped": 0}


def test_junit_option_adds_a_temporary_report(suite: Path, ctx: VerificationContext) -> None:
    argv = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    result = CommandVerifier("pytest", argv, junit_option="--junitxml").verify(suite, ctx)
    assert result.score == 0.75
    assert "--junitxml=" in result.details["command"]
    assert not list(suite.rglob("*.xml"))


@pytest.mark.parametrize("exit_code, score", [(0, 1.0), (1, 0.0)])
def test_garbage_report_falls_back_to_exit_status(
    tmp_path: Path, ctx: VerificationContext, exit_code: int, score: float
) -> None:
    code = f"import sys; open('r.xml', 'w').write('<testsuite><testcase'); sys.exit({exit_code})"
    result = CommandVerifier("g", py(code), junit_xml="r.xml").verify(tmp_path, ctx)
    assert result.score == score and "junit" not in result.details


def test_stale_report_is_ignored(tmp_path: Path, ctx: VerificationContext) -> None:
    report = tmp_path / "r.xml"
    report.write_text('<testsuite><testcase name="a"><failure/></testcase></testsuite>')
    old = time.time() - 3600
    os.utime(report, (old, old))
    result = CommandVerifier("s", ["true"], junit_xml="r.xml").verify(tmp_path, ctx)
    assert result.score == 1.0


def test_skipped_cases_are_not_counted(tmp_path: Path, ctx: VerificationContext) -> None:
    xml = (
        "<testsuites><testsuite>"
        '<testcase name="a"/><testcase name="b"><skipped/></testcase>'
        '<testcase name="c"><error/></testcase>'
        "</testsuite></testsuites>"
    )
    code = f"open('r.xml', 'w').write({xml!r})"
    result = CommandVerifier("k", py(code), junit_xml="r.xml").verify(tmp_path, ctx)
    assert result.score == 0.5
    assert result.details["junit"] == {"passed": 1, "failed": 1, "skipped": 1}


@pytest.mark.parametrize(
    "kwargs", [{"command": []}, {"command": "true", "timeout_s": 0}, {"command": "x", "weight": -1}]
)
def test_invalid_arguments_are_rejected(kwargs: dict[str, object]) -> None:
    command = kwargs.pop("command")
    with pytest.raises(ValueError):
        CommandVerifier("bad", command, **kwargs)


def test_a_process_escaping_the_group_cannot_hang_the_call(tmp_path: Path) -> None:
    pid_file = tmp_path / "escaped.pid"
    code = (
        "import subprocess, time\n"
        "p = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"  # out of the group
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    done = run_bounded(py(code), cwd=tmp_path, timeout_s=1.0)
    escaped = int(pid_file.read_text())
    try:
        assert time.monotonic() - started < 1.0 + 1.5
        assert done.timed_out and done.exit_code is None
        # ... and it did not escape: the check's timeout killed it too (and reaped it).
        assert not pid_alive(escaped)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(escaped, 9)


@pytest.mark.parametrize("timeout_s", [30.0, 1.0], ids=["exits", "times-out"])
def test_a_check_leaves_no_process_behind(tmp_path: Path, timeout_s: float) -> None:
    """A setsid grandchild and a double-forked daemon die with the check, whether it
    exits by itself or is killed at its timeout."""
    pid_file = tmp_path / "left.json"
    code = (
        "import json, os, subprocess, sys, time\n"
        "setsid = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.write(w, str(os.getpid()).encode()); os.execvp('sleep', ['sleep', '600'])\n"
        "    os._exit(0)\n"
        "daemon = int(os.read(r, 32))\n"
        f"open({str(pid_file)!r}, 'w').write(json.dumps([setsid.pid, daemon]))\n"
        f"time.sleep({0 if timeout_s > 1 else 600})\n"
    )
    done = run_bounded(py(code), cwd=tmp_path, timeout_s=timeout_s)
    left = json.loads(pid_file.read_text())
    try:
        assert done.timed_out is (timeout_s == 1.0)
        assert [pid for pid in left if pid_alive(pid)] == []
    finally:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                if pid_alive(pid):
                    os.kill(pid, 9)


def pid_alive(pid: int) -> bool:
    """Running (not a zombie). The supervisor reaps what it kills, so a dead one is
    gone, and its pid is not reused within a test's few milliseconds."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status
