"""Verifiers: how directorate judges an agent's work (DESIGN §6).

Programmatic checks (commands: tests, linters, builds, found by
:func:`auto_detect_verifiers` or configured with :func:`build_verifiers`) and an
LLM judge, combined by :class:`CompositeEvaluator` into green, yellow or red.
It also holds what runs the engine's child processes, agents and checks alike:
their clean environment (``environment``), the supervisor that outlives every
process they start (``supervisor``, ``supervised``) and the check that a dead
engine's agent is gone (``stale_agents``). This package imports nothing from the
rest of the engine.
"""

from .command import CommandVerifier
from .composite import CompositeEvaluator
from .config import build_verifiers
from .detect import Detection, Skip, auto_detect_verifiers
from .environment import CleanEnvironment, base_environment, looks_secret
from .errors import InvalidVerifierConfig
from .gitfiles import git_changed_files, git_changes_since
from .llm import LlmVerifier
from .records import (
    AcceptanceCriterion,
    ConfidenceLevel,
    EvaluationResult,
    VerificationContext,
    Verifier,
    VerifierResult,
    VerifierType,
    result_to_json,
)

__all__ = [
    "AcceptanceCriterion",
    "CleanEnvironment",
    "CommandVerifier",
    "CompositeEvaluator",
    "ConfidenceLevel",
    "Detection",
    "EvaluationResult",
    "InvalidVerifierConfig",
    "LlmVerifier",
    "Skip",
    "VerificationContext",
    "Verifier",
    "VerifierResult",
    "VerifierType",
    "auto_detect_verifiers",
    "base_environment",
    "build_verifiers",
    "git_changed_files",
    "git_changes_since",
    "looks_secret",
    "result_to_json",
]
