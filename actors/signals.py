"""Engine signals (DESIGN §11): blinker signals, sent after commit, in order per directive.

Subscribe with ``signals.step_status_changed.connect(fn)``; ``fn(sender, event=...)``
gets the directive id as ``sender`` and a frozen record as ``event``. Connect with
``sender=directive_id`` to hear about one directive only.
"""

from __future__ import annotations

import uuid

import attrs
from blinker import Namespace

_signals = Namespace()

directive_status_changed = _signals.signal("directive-status-changed")
step_status_changed = _signals.signal("step-status-changed")
evaluation_completed = _signals.signal("evaluation-completed")
approval_required = _signals.signal("approval-required")
chain_regenerated = _signals.signal("chain-regenerated")
directive_event = _signals.signal("directive-event")
"""Every persisted event row (a ``directorate.persistence.models.Event``)."""


@attrs.frozen(kw_only=True)
class DirectiveStatusChanged:
    directive_id: uuid.UUID
    old_status: str
    new_status: str


@attrs.frozen(kw_only=True)
class StepStatusChanged:
    directive_id: uuid.UUID
    step_id: uuid.UUID
    step_name: str
    old_status: str
    new_status: str


@attrs.frozen(kw_only=True)
class EvaluationCompleted:
    directive_id: uuid.UUID
    step_id: uuid.UUID | None
    evaluation_id: uuid.UUID
    passed: bool
    confidence_level: str
    composite_score: float


@attrs.frozen(kw_only=True)
class ApprovalRequired:
    directive_id: uuid.UUID
    approval_id: uuid.UUID
    approval_type: str
    description: str


@attrs.frozen(kw_only=True)
class ChainRegenerated:
    directive_id: uuid.UUID
    old_chain_id: uuid.UUID
    new_chain_id: uuid.UUID


EngineEvent = (
    DirectiveStatusChanged
    | StepStatusChanged
    | EvaluationCompleted
    | ApprovalRequired
    | ChainRegenerated
)

SIGNAL_FOR = {
    DirectiveStatusChanged: directive_status_changed,
    StepStatusChanged: step_status_changed,
    EvaluationCompleted: evaluation_completed,
    ApprovalRequired: approval_required,
    ChainRegenerated: chain_regenerated,
}

__all__ = [
    "ApprovalRequired",
    "ChainRegenerated",
    "DirectiveStatusChanged",
    "EngineEvent",
    "EvaluationCompleted",
    "StepStatusChanged",
    "approval_required",
    "chain_regenerated",
    "directive_event",
    "directive_status_changed",
    "evaluation_completed",
    "step_status_changed",
]
