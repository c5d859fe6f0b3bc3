"""directorate's engine: the public API (DESIGN §10)."""

from directorate.persistence.errors import (
    CircuitBreakerTripped,
    DirectorateError,
    EngineTimeout,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PersistenceUnavailable,
    RunnerError,
    VerifierError,
)
from directorate.persistence.models import (
    AcceptanceCriterion,
    AgentSpec,
    AutonomyLevel,
    DirectiveSpec,
    DirectiveStatus,
    Requirement,
    StepSpec,
    StepStatus,
    StepType,
    Task,
)

from . import signals
from .context import EngineConfig
from .engine import Engine, ShutdownReport, Snapshot
from .runners import CallableRunner, CommandRunner, TaskResult, TaskRunner

__all__ = [
    "AcceptanceCriterion",
    "AgentSpec",
    "AutonomyLevel",
    "CallableRunner",
    "CircuitBreakerTripped",
    "CommandRunner",
    "DirectiveSpec",
    "DirectiveStatus",
    "DirectorateError",
    "Engine",
    "EngineConfig",
    "EngineTimeout",
    "InvalidInput",
    "InvalidTransition",
    "NotFound",
    "PersistenceUnavailable",
    "Requirement",
    "RunnerError",
    "ShutdownReport",
    "Snapshot",
    "StepSpec",
    "StepStatus",
    "StepType",
    "Task",
    "TaskResult",
    "TaskRunner",
    "VerifierError",
    "signals",
]
