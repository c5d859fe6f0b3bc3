"""The LLM tier: a judge that reads the work and the checks' results and gives a verdict.

The judge is a command-line tool of a known kind (``claude-code``, ``codex``: run
with the kind's argv for a judge, its output read by the kind), a generic command
(kind ``command``: the prompt on stdin, the verdict somewhere in its output, its
cost on a JSON report line if it prints one) or a Python callable (prompt -> text).

A judge that does not give a usable verdict — garbage, no JSON object, a non-zero
exit, a timeout, an exception, a tool that says it failed or could not reach its
model — is *unavailable*: its result has ``score=None`` and
``details={"unavailable": reason}``; the composite evaluation leaves it out of the
score and caps the level at yellow. What a judge's session spent (``cost_usd``,
``tokens``, ``turns`` as its tool reported them) is on its result either way: the
engine counts it toward the directive like a task's.
"""

from __future__ import annotations

import shlex
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs

from .environment import CleanEnvironment, mask, mask_optional
from .judge_prompt import MAX_DIFF_CHARS, build_prompt, parse_verdict
from .process import run_bounded
from .records import VerificationContext, VerifierResult, VerifierType
from .tools import DEFAULT_TABLE, Price, Purpose, RunSettings, ToolReport, kind_named

Judge = Callable[[str], str]
DEFAULT_TIMEOUT_S = 300.0
COMMAND_KIND = "command"
_REASON_TAIL = 500
_OUTPUT_TAIL = 2_000
_PROMPT_FILE = "judge-prompt.md"


@attrs.frozen(kw_only=True)
class _Answer:
    """What the judge said: its answer text, why it is unusable (None if it may be
    used), and its tool's report (what it spent)."""

    text: str
    problem: str | None = None
    report: ToolReport = attrs.field(factory=ToolReport)


class LlmVerifier:
    """Asks ``judge`` (argv list, command string split with shlex, or callable).

    ``kind`` names the tool (``verifiers.tools``): for a tool kind, ``judge`` is its
    command and may be omitted (the kind's binary); ``model`` and ``extra_args`` go
    to its argv, ``prices`` over the default price table for tools that report only
    tokens. A callable judge is not interrupted at ``timeout_s``: give it its own
    timeout. A command judge runs in a clean environment (:mod:`.environment`): the
    base variables, the engine's variables named in ``pass_env``, then ``env`` (then
    the kind's own settings, which never override them); values of secret-looking
    passed variables are masked in its answer.
    """

    verifier_type = VerifierType.LLM

    def __init__(
        self,
        judge: str | Sequence[str] | Judge | None = None,
        *,
        kind: str = COMMAND_KIND,
        model: str | None = None,
        extra_args: Sequence[str] = (),
        prices: Mapping[str, Price] | None = None,
        name: str = "llm-judge",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        weight: float = 1.0,
        required: bool = False,
        max_diff_chars: int = MAX_DIFF_CHARS,
        env: Mapping[str, str] | None = None,
        pass_env: Sequence[str] = (),
    ) -> None:
        try:
            self.kind = kind_named(kind)
        except ValueError as exc:
            raise ValueError(f"verifier {name!r}: {exc}") from None
        if callable(judge):
            if kind != COMMAND_KIND:
                raise ValueError(f"verifier {name!r}: a callable judge has no kind")
            self._call: Judge | None = judge
            self.argv: list[str] = []
        else:
            self._call = None
            if judge is None:
                self.argv = []
            else:
                self.argv = (
                    shlex.split(judge) if isinstance(judge, str) else [str(a) for a in judge]
                )
            if not self.argv and kind == COMMAND_KIND:
                raise ValueError(f"verifier {name!r}: empty judge command")
        if not timeout_s > 0:
            raise ValueError(f"verifier {name!r}: timeout_s must be positive")
        self.name = name
        self.settings = RunSettings(
            purpose=Purpose.JUDGE,
            executable=tuple(self.argv),
            model=model,
            extra_args=tuple(extra_args),
            keep_session=False,  # a verdict is never resumed
        )
        self.prices = DEFAULT_TABLE.with_overrides(prices or {})
        self.timeout_s = float(timeout_s)
        self.weight = float(weight)
        self.required = required
        self.max_diff_chars = max_diff_chars
        try:
            self.environment = CleanEnvironment(pass_env=pass_env, env=env)
        except ValueError as exc:
            raise ValueError(f"verifier {name!r}: {exc}") from None

    def __repr__(self) -> str:
        if self._call is not None:
            return f"LlmVerifier({self._call!r})"
        judge = shlex.join(self.argv) if self.argv else self.kind.binary
        return f"LlmVerifier({judge}, kind={self.kind.name})"

    def verify(self, repo_path: Path, ctx: VerificationContext) -> VerifierResult:
        started = time.monotonic()
        prompt = build_prompt(repo_path, ctx, self.max_diff_chars)
        answer = self._ask(repo_path, prompt)
        report = answer.report
        verdict = None
        if answer.problem is None:
            verdict = parse_verdict(answer.text)
            if verdict is None and report.result and report.result != answer.text:
                # A generic command wrapping a tool: the verdict is its report's answer.
                verdict = parse_verdict(report.result)
        notes = {
            key: note
            for key, note in (
                ("cost_note", report.cost_note),
                ("tokens_note", report.tokens_note),
                ("turns_note", report.turns_note),
            )
            if note
        }
        if verdict is None:
            reason = (
                answer.problem or "no JSON verdict with 'passed' and 'score' in the judge's answer"
            )
            return VerifierResult(
                name=self.name,
                verifier_type=VerifierType.LLM,
                passed=False,
                score=None,
                output=answer.text[-_OUTPUT_TAIL:],
                duration_s=time.monotonic() - started,
                details={"unavailable": reason, **notes},
                cost_usd=report.cost_usd,
                tokens=report.tokens,
                turns=report.turns,
            )
        return VerifierResult(
            name=self.name,
            verifier_type=VerifierType.LLM,
            passed=verdict["passed"],
            score=verdict["score"],
            output=verdict["feedback"],
            duration_s=time.monotonic() - started,
            details={"feedback": verdict["feedback"], "criteria": verdict["criteria"], **notes},
            cost_usd=report.cost_usd,
            tokens=report.tokens,
            turns=report.turns,
        )

    def _ask(self, repo_path: Path, prompt: str) -> _Answer:
        """The judge's answer, and why it is unusable (None if it may be)."""
        if self._call is not None:
            try:
                return _Answer(text=str(self._call(prompt)))
            except Exception as exc:  # a judge's failure is the judge's, not the work's
                return _Answer(text="", problem=f"the judge raised {type(exc).__name__}: {exc}")
        with tempfile.TemporaryDirectory(prefix="directorate-judge-") as folder:
            prompt_file = Path(folder) / _PROMPT_FILE
            try:
                invocation = self.kind.invocation(self.settings, prompt_file, repo_path)
            except ValueError as exc:  # the kind cannot run this configuration
                return _Answer(text="", problem=f"the judge cannot be run: {exc}")
            if not invocation.stdin:
                prompt_file.write_text(prompt, encoding="utf-8")
            env = self.environment.build()
            for key, value in invocation.env.items():
                env.setdefault(key, value)
            done = run_bounded(
                invocation.argv,
                cwd=repo_path,
                timeout_s=self.timeout_s,
                env=env,
                stdin=prompt.encode() if invocation.stdin else None,
            )
        secrets = self.environment.secrets(env)
        output = mask(done.output, secrets)
        # stdout and stderr come interleaved: each kind reads its report from the
        # last JSON lines, and its failure words from anywhere in the text.
        report = self.kind.read(output, output, done.exit_code, self.settings, self.prices)
        report = attrs.evolve(
            report,
            result=mask_optional(report.result, secrets),
            failure=mask_optional(report.failure, secrets),
            unavailable=mask_optional(report.unavailable, secrets),
        )
        text = output if self.kind.name == COMMAND_KIND else (report.result or output)
        if done.error is not None:
            return _Answer(text=output, problem=mask(done.error, secrets), report=report)
        if done.timed_out:
            problem = f"the judge timed out after {self.timeout_s:g} s"
            return _Answer(text=output, problem=problem, report=report)
        if report.unavailable:
            problem = f"the judge could not reach its model: {report.unavailable}"
            return _Answer(text=output, problem=problem, report=report)
        if report.failure:
            problem = f"the judge reported a failure: {report.failure}"
            return _Answer(text=output, problem=problem, report=report)
        if done.exit_code != 0:
            tail = output[-_REASON_TAIL:].strip()
            problem = f"the judge exited with status {done.exit_code}: {tail}"
            return _Answer(text=output, problem=problem, report=report)
        return _Answer(text=text, report=report)
