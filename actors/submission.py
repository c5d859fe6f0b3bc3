"""Directive specs checked and turned into the write that creates their draft.

``check_spec`` is everything ``Engine.submit`` refuses before writing: the spec's own
rules (``DirectiveSpec.validate``) and what depends on this machine (``local_path``
is a directory, a git repository unless shared, verifier settings that make sense
there). ``check_specs`` checks a batch the same way and names the spec at fault, so
that nothing of a batch is written when any of it is bad.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from directorate.persistence import ops
from directorate.persistence.convert import spec_converter
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import DirectiveSpec
from directorate.persistence.validation import check_directory

from .evaluation import check_verifier_config
from .tx import Tx
from .workspaces import check_repository


def check_spec(spec: DirectiveSpec) -> None:
    """``InvalidInput`` naming the first bad field."""
    spec.validate()
    # Here rather than in validate(): the spec is data, this is about this machine.
    check_directory("local_path", spec.local_path)
    check_repository(spec)
    check_verifier_config(spec.verifiers, spec.local_path)
    for step in spec.steps or []:
        check_verifier_config(step.verifiers, spec.local_path, where=f"steps.{step.name}")


def check_specs(specs: Sequence[DirectiveSpec], names: Sequence[str] | None = None) -> None:
    """Every spec checked; ``InvalidInput`` names the first bad one (``names[i]``, else
    ``specs[i]``) and its field."""
    if names is not None and len(names) != len(specs):
        raise InvalidInput(f"names: {len(names)} names for {len(specs)} specs")
    for index, spec in enumerate(specs):
        try:
            check_spec(spec)
        except InvalidInput as exc:
            name = names[index] if names is not None else f"specs[{index}]"
            raise InvalidInput(f"{name}: {exc}") from None


def creation(spec: DirectiveSpec, owner_id: str | None) -> tuple[uuid.UUID, Tx]:
    """A new directive's id and the write that creates it as a draft (checked first)."""
    directive_id = uuid.uuid4()
    values = spec_converter.unstructure(spec)
    steps = values.pop("steps")
    values["verifier_config"] = values.pop("verifiers")
    values["explicit_steps"] = steps
    values = {k: v for k, v in values.items() if v is not None}
    tx = Tx(directive_id)
    tx.op(ops.insert("directives", id=directive_id, owner_id=owner_id, **values))
    tx.event("directive_created", {"title": spec.title})
    return directive_id, tx
