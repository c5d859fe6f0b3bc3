"""The LLM tier: a judge that reads the work and the checks' results and gives a verdict.

The judge is a command (the prompt on stdin, the verdict somewhere in its output) or
a Python callable (prompt -> text). A judge that does not give a usable verdict —
garbage, no JSON object, a non-zero exit, a timeout, an exception — is *unavailable*:
its result has ``score=None`` and ``details={"unavailable": reason}``, and the
composite evaluation leaves it out with a warning instead of failing the work.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .environment import CleanEnvironment, mask
from .judge_prompt import MAX_DIFF_CHARS, build_prompt, parse_verdict
from .process import run_bounded
from .records import VerificationContext, VerifierResult, VerifierType

Judge = Callable[[str], str]
DEFAULT_TIMEOUT_S = 300.0
_REASON_TAIL = 500
_OUTPUT_TAIL = 2_000


class LlmVerifier:
    """Asks ``judge`` (argv list, command string split with shlex, or callable).

    A callable judge is not interrupted at ``timeout_s``: give it its own timeout.
    A command judge runs in a clean environment (:mod:`.environment`): the base
    variables, the engine's variables named in ``pass_env``, then ``env``; values of
    secret-looking passed variables are masked in its answer.
    """

    verifier_type = VerifierType.LLM

    def __init__(
        self,
        judge: str | Sequence[str] | Judge,
        *,
        name: str = "llm-judge",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        weight: float = 1.0,
        required: bool = False,
        max_diff_chars: int = MAX_DIFF_CHARS,
        env: Mapping[str, str] | None = None,
        pass_env: Sequence[str] = (),
    ) -> None:
        if callable(judge):
            self._call: Judge | None = judge
            self.argv: list[str] = []
        else:
            self._call = None
            self.argv = shlex.split(judge) if isinstance(judge, str) else [str(a) for a in judge]
            if not self.argv:
                raise ValueError(f"verifier {name!r}: empty judge command")
        if not timeout_s > 0:
            raise ValueError(f"verifier {name!r}: timeout_s must be positive")
        self.name = name
        self.timeout_s = float(timeout_s)
        self.weight = float(weight)
        self.required = required
        self.max_diff_chars = max_diff_chars
        try:
            self.environment = CleanEnvironment(pass_env=pass_env, env=env)
        except ValueError as exc:
            raise ValueError(f"verifier {name!r}: {exc}") from None

    def __repr__(self) -> str:
        judge = shlex.join(self.argv) if self.argv else repr(self._call)
        return f"LlmVerifier({judge})"

    def verify(self, repo_path: Path, ctx: VerificationContext) -> VerifierResult:
        started = time.monotonic()
        prompt = build_prompt(repo_path, ctx, self.max_diff_chars)
        answer, problem = self._ask(repo_path, prompt)
        verdict = parse_verdict(answer) if problem is None else None
        if verdict is None:
            reason = problem or "no JSON verdict with 'passed' and 'score' in the judge's answer"
            return VerifierResult(
                name=self.name,
                verifier_type=VerifierType.LLM,
                passed=False,
                score=None,
                output=answer[-_OUTPUT_TAIL:],
                duration_s=time.monotonic() - started,
                details={"unavailable": reason},
            )
        return VerifierResult(
            name=self.name,
            verifier_type=VerifierType.LLM,
            passed=verdict["passed"],
            score=verdict["score"],
            output=verdict["feedback"],
            duration_s=time.monotonic() - started,
            details={"feedback": verdict["feedback"], "criteria": verdict["criteria"]},
        )

    def _ask(self, repo_path: Path, prompt: str) -> tuple[str, str | None]:
        """The judge's answer, and why it is unusable (None if it may be)."""
        if self._call is not None:
            try:
                return str(self._call(prompt)), None
            except Exception as exc:  # a judge's failure is the judge's, not the work's
                return "", f"the judge raised {type(exc).__name__}: {exc}"
        env = self.environment.build()
        done = run_bounded(
            self.argv, cwd=repo_path, timeout_s=self.timeout_s, env=env, stdin=prompt.encode()
        )
        secrets = self.environment.secrets(env)
        output = mask(done.output, secrets)
        if done.error is not None:
            return output, mask(done.error, secrets)
        if done.timed_out:
            return output, f"the judge timed out after {self.timeout_s:g} s"
        if done.exit_code != 0:
            tail = output[-_REASON_TAIL:].strip()
            return output, f"the judge exited with status {done.exit_code}: {tail}"
        return output, None
