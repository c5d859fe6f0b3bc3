"""A check that is a command: exit status 0 passes; a JUnit report refines the score."""

from __future__ import annotations

import shlex
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .environment import CleanEnvironment, mask
from .junit import read_junit
from .process import run_bounded
from .records import VerificationContext, VerifierResult, VerifierType

DEFAULT_TIMEOUT_S = 600.0


class CommandVerifier:
    """Runs ``command`` in the repository (or ``cwd``, relative to it).

    ``command`` is an argv list, or a string split with :func:`shlex.split` (never
    given to a shell: write ``sh -c '...'`` for pipes). It runs in a clean
    environment (:mod:`.environment`): the base variables, the engine's variables
    named in ``pass_env``, then ``env``; values of secret-looking passed variables
    are masked in its output. The score is 1.0 or 0.0 by exit status, unless the
    command wrote a JUnit XML report: then it is the fraction of test cases that
    passed. The report is ``junit_xml`` when given, else the path after
    ``--junitxml``/``--junit-xml`` in the command; with ``junit_option`` (e.g.
    ``"--junitxml"``) the verifier adds ``OPTION=<temporary file>`` itself.
    """

    def __init__(
        self,
        name: str,
        command: str | Sequence[str],
        *,
        cwd: str | Path | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
        pass_env: Sequence[str] = (),
        verifier_type: VerifierType | str = VerifierType.CUSTOM,
        weight: float = 1.0,
        required: bool = True,
        junit_xml: str | Path | None = None,
        junit_option: str | None = None,
    ) -> None:
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        if not argv:
            raise ValueError(f"verifier {name!r}: empty command")
        if not timeout_s > 0:
            raise ValueError(f"verifier {name!r}: timeout_s must be positive")
        if not weight >= 0:
            raise ValueError(f"verifier {name!r}: weight must not be negative")
        self.name = name
        self.argv = argv
        self.cwd = Path(cwd) if cwd is not None else None
        self.timeout_s = float(timeout_s)
        self.env = dict(env) if env else None
        self.pass_env = list(pass_env)
        try:
            CleanEnvironment(pass_env=self.pass_env, env=self.env)
        except ValueError as exc:
            raise ValueError(f"verifier {name!r}: {exc}") from None
        self.verifier_type = VerifierType(verifier_type)
        self.weight = float(weight)
        self.required = required
        self.junit_xml = Path(junit_xml) if junit_xml is not None else None
        self.junit_option = junit_option

    def __repr__(self) -> str:
        return f"CommandVerifier({self.name!r}, {shlex.join(self.argv)!r})"

    def verify(self, repo_path: Path, ctx: VerificationContext) -> VerifierResult:
        workdir = repo_path / self.cwd if self.cwd is not None else repo_path
        if self.junit_option is None:
            return self._run(workdir, self.argv, self._report_path(workdir))
        with tempfile.TemporaryDirectory(prefix="directorate-junit-") as tmp:
            report = Path(tmp) / "report.xml"
            return self._run(workdir, [*self.argv, f"{self.junit_option}={report}"], report)

    def _report_path(self, workdir: Path) -> Path | None:
        found = self.junit_xml or _junit_path_in(self.argv)
        return workdir / found if found is not None else None

    def _run(self, workdir: Path, argv: list[str], report: Path | None) -> VerifierResult:
        started = time.time()
        environment = CleanEnvironment(pass_env=self.pass_env, env=self.env)
        env = environment.build()
        done = run_bounded(argv, cwd=workdir, timeout_s=self.timeout_s, env=env)
        output = mask(done.output, environment.secrets(env))
        passed = done.exit_code == 0
        details: dict[str, Any] = {
            "command": shlex.join(argv),
            "exit_code": done.exit_code,
            "timed_out": done.timed_out,
        }
        score = 1.0 if passed else 0.0
        # A report older than this run is a previous run's: not evidence about this one
        # (1 s of slack for coarse file system timestamps).
        if report is not None and not done.timed_out and _modified_since(report, started - 1.0):
            counts = read_junit(report)
            if counts is not None and counts.score is not None:
                score = counts.score
                details["junit"] = {
                    "passed": counts.passed,
                    "failed": counts.failed,
                    "skipped": counts.skipped,
                }
        return VerifierResult(
            name=self.name,
            verifier_type=self.verifier_type,
            passed=passed,
            score=score,
            output=output,
            duration_s=done.duration_s,
            details=details,
        )


def _junit_path_in(argv: Sequence[str]) -> Path | None:
    for i, arg in enumerate(argv):
        for option in ("--junitxml", "--junit-xml"):
            if arg.startswith(option + "="):
                return Path(arg.split("=", 1)[1])
            if arg == option and i + 1 < len(argv):
                return Path(argv[i + 1])
    return None


def _modified_since(path: Path, when: float) -> bool:
    try:
        return path.stat().st_mtime >= when
    except OSError:
        return False
