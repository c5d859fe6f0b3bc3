"""Records and status enums (DESIGN §2).

Records are frozen, keyword-only attrs classes built from database rows with
``from_row`` and changed with ``attrs.evolve``. Status enums are ``StrEnum``s
whose values are the strings stored in PostgreSQL. The specs (``DirectiveSpec``,
``StepSpec``) are what a person writes; they are validated where they enter.
"""

from __future__ import annotations

import enum
import math
import urllib.parse
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Self

import attrs

from . import validation as check
from .errors import InvalidInput

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]

# --------------------------------------------------------------------------- statuses


class DirectiveStatus(enum.StrEnum):
    DRAFT = "draft"
    PLANNING = "planning"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_DIRECTIVE_STATUSES

    @property
    def live(self) -> bool:
        """Statuses a restarted engine recovers (DESIGN §9)."""
        return self in (DirectiveStatus.PLANNING, DirectiveStatus.ACTIVE, DirectiveStatus.PAUSED)


TERMINAL_DIRECTIVE_STATUSES = frozenset(
    {DirectiveStatus.COMPLETED, DirectiveStatus.FAILED, DirectiveStatus.CANCELLED}
)

_D = DirectiveStatus
DIRECTIVE_TRANSITIONS: dict[DirectiveStatus, frozenset[DirectiveStatus]] = {
    _D.DRAFT: frozenset({_D.PLANNING, _D.ACTIVE, _D.CANCELLED}),
    _D.PLANNING: frozenset({_D.ACTIVE, _D.PAUSED, _D.FAILED, _D.CANCELLED}),
    _D.ACTIVE: frozenset({_D.PAUSED, _D.COMPLETED, _D.FAILED, _D.CANCELLED, _D.PLANNING}),
    _D.PAUSED: frozenset({_D.ACTIVE, _D.PLANNING, _D.FAILED, _D.CANCELLED}),
    _D.COMPLETED: frozenset(),
    _D.FAILED: frozenset(),
    _D.CANCELLED: frozenset(),
}


class ChainStatus(enum.StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    EVALUATING = "evaluating"
    PASSED = "passed"
    REWORK = "rework"
    BLOCKED = "blocked"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        return self in (StepStatus.PASSED, StepStatus.SKIPPED)


_S = StepStatus
STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    _S.PENDING: frozenset({_S.READY, _S.SKIPPED, _S.FAILED}),
    _S.READY: frozenset({_S.RUNNING, _S.PENDING, _S.SKIPPED, _S.FAILED}),
    # running -> ready: the task was cancelled by a pause and will run again.
    _S.RUNNING: frozenset({_S.EVALUATING, _S.READY, _S.FAILED, _S.BLOCKED}),
    _S.EVALUATING: frozenset({_S.PASSED, _S.REWORK, _S.BLOCKED, _S.READY, _S.FAILED}),
    _S.REWORK: frozenset({_S.RUNNING, _S.READY, _S.BLOCKED, _S.FAILED}),
    _S.BLOCKED: frozenset({_S.READY, _S.FAILED, _S.SKIPPED}),
    _S.PASSED: frozenset(),
    _S.FAILED: frozenset(),
    _S.SKIPPED: frozenset(),
}


class StepType(enum.StrEnum):
    RESEARCH = "research"
    DESIGN = "design"
    IMPLEMENT = "implement"
    TEST = "test"
    REVIEW = "review"
    DOCUMENT = "document"


class AutonomyLevel(enum.StrEnum):
    FULL_AUTO = "full_auto"
    GUARDRAILS = "guardrails"
    MANUAL = "manual"


class Delivery(enum.StrEnum):
    """What becomes of a directive's result branch when it completes."""

    BRANCH = "branch"
    """Left as it is, for the user to look at and merge."""
    MERGE = "merge"
    """Merged into the base branch (refused if that working tree has uncommitted work)."""
    PULL_REQUEST = "pull_request"
    """Pushed to the remote, and a pull request opened with ``gh``."""


class Isolation(enum.StrEnum):
    WORKTREE = "worktree"
    """Each step in a git worktree of its own, merged into the result branch."""
    SHARED = "shared"
    """Every step in ``local_path`` itself (unsafe with parallel steps)."""


class TaskKind(enum.StrEnum):
    PLANNING = "planning"
    STEP = "step"


class TaskStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (TaskStatus.QUEUED, TaskStatus.RUNNING)


class ConfidenceLevel(enum.StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class ApprovalType(enum.StrEnum):
    STEP_REVIEW = "step_review"
    CHAIN_BLOCKED = "chain_blocked"
    CIRCUIT_BREAKER = "circuit_breaker"
    DIRECTIVE_REVIEW = "directive_review"
    AGENT_UNAVAILABLE = "agent_unavailable"
    """The agent could not reach its model: approve to retry, deny to fail."""


class ApprovalStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class ActorType(enum.StrEnum):
    SYSTEM = "system"
    USER = "user"
    AGENT = "agent"


class CommandType(enum.StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    REGENERATE = "regenerate"
    APPROVE = "approve"
    DENY = "deny"


class CommandStatus(enum.StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    REJECTED = "rejected"


# --------------------------------------------------------------------------- specs
#
# Each spec field checks itself when the spec is built (attrs validators), so a
# bad value is refused where it enters with an ``InvalidInput`` naming the field;
# the rules across fields, and limits only new input must meet, are in
# ``DirectiveSpec.validate`` and ``validate_steps``. Requirement,
# AcceptanceCriterion, StepSpec and AgentSpec are also rebuilt from stored rows,
# so their build-time checks are ones stored data always met.


def _new_id() -> uuid.UUID:
    return uuid.uuid4()


def _checked(check_field: Callable[[str, Any], None]) -> _Validator:
    """An attrs validator that runs ``check_field(field_name, value)``."""

    def validator(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        check_field(attribute.name, value)

    return validator


def _revalidate(where: str, spec: attrs.AttrsInstance) -> None:
    """Run a nested spec's field checks again, its fields named under ``where``."""
    try:
        attrs.validate(spec)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}.{exc}") from exc


def _to_step_type(value: StepType | str) -> StepType:
    return check.to_choice("step_type", value, StepType)


def _to_autonomy_level(value: AutonomyLevel | str) -> AutonomyLevel:
    return check.to_choice("autonomy_level", value, AutonomyLevel)


def _check_command(field: str, value: Any) -> None:
    check.check_text_list(field, value)
    if not value:
        raise InvalidInput(f"{field}: must not be empty")


def _to_delivery(value: Delivery | str) -> Delivery:
    return check.to_choice("workspace.deliver", value, Delivery)


def _to_isolation(value: Isolation | str) -> Isolation:
    return check.to_choice("workspace.isolation", value, Isolation)


MAX_SETUP_COMMANDS = 20


def _check_setup(field: str, value: Any) -> None:
    check.check_list_of(field, value, list, "an argv list")
    if len(value) > MAX_SETUP_COMMANDS:
        raise InvalidInput(f"{field}: {len(value)} commands, more than {MAX_SETUP_COMMANDS}")
    for index, argv in enumerate(value):
        _check_command(f"{field}[{index}]", argv)


def _check_copy_globs(field: str, value: Any) -> None:
    check.check_text_list(field, value)
    for index, glob in enumerate(value):
        if not glob.strip() or glob.startswith("/") or ".." in glob.split("/"):
            raise InvalidInput(
                f"{field}[{index}]: {glob!r} must be a pattern inside the repository"
            )


def _check_webhook(field: str, value: Any) -> None:
    check.check_optional_text(field, value)
    if value is None:
        return
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{field}: {value[:80]!r} is not an http:// or https:// URL")
    if len(value) > 2000 or any(c.isspace() for c in value):
        raise InvalidInput(f"{field}: a URL of at most 2000 characters, without spaces")


def _check_git_name(field: str, value: Any) -> None:
    check.check_optional_text(field, value)
    if value is not None and (not value.strip() or value.startswith("-")):
        raise InvalidInput(f"{field}: {value!r} is not a usable git name")


def _check_count_limit(field: str, value: Any, maximum: int) -> None:
    check.check_integer(field, value, minimum=1, maximum=maximum, optional=True)


def _check_yellow_threshold(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """Yellow is checked after green (field order), so the pair can be compared."""
    check.check_threshold(attribute.name, value)
    check.check_thresholds(instance.confidence_threshold_green, value)


_text = _checked(check.check_text)
_optional_text = _checked(check.check_optional_text)
_text_list = _checked(check.check_text_list)
_optional_table = _checked(check.check_optional_table)


@attrs.frozen(kw_only=True)
class Requirement:
    id: str = attrs.field(validator=_text)
    description: str = attrs.field(validator=_text)


@attrs.frozen(kw_only=True)
class AcceptanceCriterion:
    id: str = attrs.field(validator=_text)
    criterion: str = attrs.field(validator=_text)


@attrs.frozen(kw_only=True)
class StepSpec:
    """One step of a chain as a planner (or a person) writes it."""

    name: str = attrs.field(validator=_checked(check.check_step_name))
    step_type: StepType = attrs.field(default=StepType.IMPLEMENT, converter=_to_step_type)
    description: str = attrs.field(default="", validator=_text)
    task_plan: str | None = attrs.field(default=None, validator=_optional_text)
    depends_on: list[str] = attrs.field(factory=list, validator=_text_list)
    requirement_ids: list[str] = attrs.field(factory=list, validator=_text_list)
    verifiers: dict[str, Any] | None = attrs.field(default=None, validator=_optional_table)
    """This step's own ``[verifiers]`` settings, laid over the directive's."""


AGENT_KINDS = ("command", "claude-code", "codex", "gemini", "aider")
"""``[agent] kind``: the tools directorate knows (``directorate.verifiers.tools``)."""


def _check_kind(field: str, value: Any) -> None:
    if value not in AGENT_KINDS:
        raise InvalidInput(f"{field}: {value!r} is not one of {', '.join(AGENT_KINDS)}")


def _check_agent_command(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    check.check_text_list("command", value)
    if not value and instance.kind == "command":
        raise InvalidInput("command: must not be empty or missing (kind 'command' runs it)")


def _check_prices(field: str, value: Any) -> None:
    from directorate.verifiers.tools.prices import parse_prices  # a leaf module: attrs only

    try:
        parse_prices(value, field)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _check_model(field: str, value: Any) -> None:
    if value is None:
        return
    check.check_text(field, value)
    if not value.strip() or value.startswith("-"):
        raise InvalidInput(f"{field}: must be a model name (not blank, not an option)")


@attrs.frozen(kw_only=True)
class AgentSpec:
    """The agent a directive file asks for: a known tool (``kind``) or any command.

    ``kind = "command"`` (the default) runs ``command`` as written, the instructions
    on stdin. A tool kind (``claude-code``, ``codex``, ``gemini``, ``aider``) builds
    its own argv (``directorate.verifiers.tools``); ``command``, if given, is the
    tool's executable (and leading arguments), ``model`` and ``extra_args`` go on
    its argv, ``prices`` adds to the price table for tools that report only tokens.

    The agent runs in a clean environment: the base variables (``PATH``, ``HOME``,
    locale...), the engine's variables named in ``pass_env``, then ``env``.
    """

    kind: str = attrs.field(default="command", validator=_checked(_check_kind))
    command: list[str] = attrs.field(factory=list, validator=_check_agent_command)
    model: str | None = attrs.field(default=None, validator=_checked(_check_model))
    extra_args: list[str] = attrs.field(factory=list, validator=_text_list)
    timeout_s: float = attrs.field(
        default=3600.0,
        validator=_checked(lambda f, v: check.check_limit(f, v, math.inf, optional=False)),
    )
    env: dict[str, str] = attrs.field(factory=dict, validator=_checked(check.check_env_table))
    pass_env: list[str] = attrs.field(factory=list, validator=_checked(check.check_env_names))
    resume_args: list[str] = attrs.field(factory=list, validator=_text_list)
    """Kind ``command``: added on a rework attempt when the previous one reported a
    session id, each ``{session_id}`` replaced by it. Tool kinds resume by themselves."""
    prices: dict[str, dict[str, float]] = attrs.field(
        factory=dict, validator=_checked(_check_prices)
    )
    """Dollars per million tokens by model (``input``, ``output``, ``cached_input``)."""


@attrs.frozen(kw_only=True)
class NotifySpec:
    """``[notify]``: who is told when a human is needed or the directive ends."""

    webhook: str | None = attrs.field(default=None, validator=_checked(_check_webhook))
    """Receives a JSON POST when an approval is required, a breaker trips, or the
    directive ends (``directorate.actors.notify``)."""


@attrs.frozen(kw_only=True)
class WorkspaceSpec:
    """``[workspace]``: where a directive's steps work and what becomes of the result."""

    base: str | None = attrs.field(default=None, validator=_checked(_check_git_name))
    """The branch or commit the work starts from; None: the repository's HEAD."""
    setup: list[list[str]] = attrs.field(factory=list, validator=_checked(_check_setup))
    """Commands (argv lists) run in each new step worktree before its agent."""
    copy: list[str] = attrs.field(factory=list, validator=_checked(_check_copy_globs))
    """Ignored files (globs, like ``.env``) copied into each new worktree."""
    deliver: Delivery = attrs.field(default=Delivery.BRANCH, converter=_to_delivery)
    remote: str = attrs.field(default="origin", validator=_checked(_check_git_name))
    isolation: Isolation = attrs.field(default=Isolation.WORKTREE, converter=_to_isolation)


@attrs.frozen(kw_only=True)
class DirectiveSpec:
    """What a person asks for; mirrors the Directive record (DESIGN §10)."""

    title: str = attrs.field(validator=_checked(check.check_required_text))
    goal: str = attrs.field(validator=_checked(check.check_required_text))
    requirements: list[Requirement] = attrs.field(
        factory=list,
        validator=_checked(lambda f, v: check.check_list_of(f, v, Requirement, "a Requirement")),
    )
    acceptance_criteria: list[AcceptanceCriterion] = attrs.field(
        factory=list,
        validator=_checked(
            lambda f, v: check.check_list_of(f, v, AcceptanceCriterion, "an AcceptanceCriterion")
        ),
    )
    constraints: list[str] = attrs.field(factory=list, validator=_text_list)
    repository_url: str | None = attrs.field(default=None, validator=_optional_text)
    base_branch: str | None = attrs.field(default=None, validator=_optional_text)
    local_path: str | None = attrs.field(default=None, validator=_optional_text)
    autonomy_level: AutonomyLevel = attrs.field(
        default=AutonomyLevel.GUARDRAILS, converter=_to_autonomy_level
    )
    confidence_threshold_green: float = attrs.field(
        default=0.8, validator=_checked(check.check_threshold)
    )
    confidence_threshold_yellow: float = attrs.field(default=0.5, validator=_check_yellow_threshold)
    max_total_cost_usd: float | None = attrs.field(
        default=None, validator=_checked(lambda f, v: check.check_limit(f, v, check.MAX_COST_USD))
    )
    max_total_tokens: int | None = attrs.field(
        default=None,
        validator=_checked(lambda f, v: _check_count_limit(f, v, check.MAX_TOTAL_TOKENS)),
    )
    """Tokens the agents may use in all (as ``runners.read_tokens`` counts them)."""
    max_agent_turns: int | None = attrs.field(
        default=None,
        validator=_checked(lambda f, v: _check_count_limit(f, v, check.MAX_AGENT_TURNS)),
    )
    """Agent turns (model round trips) the agents may take in all."""
    max_wall_time_minutes: float | None = attrs.field(
        default=None,
        validator=_checked(lambda f, v: check.check_limit(f, v, check.MAX_WALL_TIME_MINUTES)),
    )
    max_rework_cycles: int = attrs.field(default=3, validator=_checked(check.check_integer))
    max_chain_regenerations: int | None = attrs.field(
        default=None, validator=_checked(lambda f, v: check.check_integer(f, v, optional=True))
    )
    steps: list[StepSpec] | None = attrs.field(
        default=None,
        validator=_checked(
            lambda f, v: check.check_list_of(f, v, StepSpec, "a StepSpec", optional=True)
        ),
    )
    verifiers: dict[str, Any] | None = attrs.field(default=None, validator=_optional_table)
    agent: AgentSpec | None = attrs.field(
        default=None,
        validator=_checked(
            lambda f, v: check.check_instance(f, v, AgentSpec, "an AgentSpec", optional=True)
        ),
    )
    notify: NotifySpec = attrs.field(
        factory=NotifySpec,
        validator=_checked(lambda f, v: check.check_instance(f, v, NotifySpec, "a NotifySpec")),
    )
    workspace: WorkspaceSpec = attrs.field(
        factory=WorkspaceSpec,
        validator=_checked(
            lambda f, v: check.check_instance(f, v, WorkspaceSpec, "a WorkspaceSpec")
        ),
    )

    def validate(self) -> Self:
        """Raise ``InvalidInput`` naming the first bad field; return self.

        Every field was checked when the spec was built; the checks run again here
        (nested specs too, in case validators were off), then the rules that span
        fields and the limits new input must meet.
        """
        attrs.validate(self)
        for index, requirement in enumerate(self.requirements):
            _revalidate(f"requirements[{index}]", requirement)
            check.check_not_blank(f"requirements[{index}].id", requirement.id)
        for index, criterion in enumerate(self.acceptance_criteria):
            _revalidate(f"acceptance_criteria[{index}]", criterion)
            check.check_not_blank(f"acceptance_criteria[{index}].id", criterion.id)
        from .convert import spec_converter  # convert imports this module

        # Every string, whichever field holds it (one added later without a check too).
        size = 0
        for key, value in spec_converter.unstructure(self).items():
            check.reject_nul(key, value)
            size += check.text_size(key, value)
        check.check_total_size("directive", size)
        check.check_thresholds(self.confidence_threshold_green, self.confidence_threshold_yellow)
        check.check_unique("requirements", [r.id for r in self.requirements])
        check.check_unique("acceptance_criteria", [c.id for c in self.acceptance_criteria])
        if self.steps is not None:
            validate_steps(self.steps, field="steps")
        _revalidate("workspace", self.workspace)
        _revalidate("notify", self.notify)
        if self.agent is not None:
            _revalidate("agent", self.agent)
            if self.agent.command:
                check.check_not_blank("agent.command[0]", self.agent.command[0])
            check.check_at_most("agent.timeout_s", self.agent.timeout_s, check.MAX_TIMEOUT_S)
        return self


def validate_steps(
    steps: list[StepSpec], *, field: str = "plan.steps", known: set[str] | None = None
) -> None:
    """DESIGN §7: kebab-case unique names, known dependencies, no cycle, 1 to
    ``MAX_CHAIN_STEPS`` steps.

    ``known`` names steps outside the plan that it may depend on (passed steps
    carried over into a regenerated chain).
    """
    check.check_list_of(field, steps, StepSpec, "a StepSpec")
    if not steps:
        raise InvalidInput(f"{field}: at least one step is needed")
    check.check_step_count(field, len(steps))
    names = [s.name for s in steps]
    for index, step in enumerate(steps):
        _revalidate(f"{field}[{index}]", step)
        check.check_step_name(f"{field}[{index}].name", step.name)
    check.check_unique(field, names)
    known = set(names) | (known or set())
    for index, step in enumerate(steps):
        for dep in step.depends_on:
            if dep not in known:
                raise InvalidInput(f"{field}[{index}].depends_on: unknown step {dep!r}")
            if dep == step.name:
                raise InvalidInput(f"{field}[{index}].depends_on: {dep!r} depends on itself")
    cycle = find_cycle({s.name: [d for d in s.depends_on if d in names] for s in steps})
    if cycle:
        raise InvalidInput(f"{field}: dependency cycle {' -> '.join(cycle)}")


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """Return one cycle as a path of names (first == last), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = GREY
        stack.append(node)
        for dep in graph.get(node, []):
            if colour.get(dep) == GREY:
                return [*stack[stack.index(dep) :], dep]
            if colour.get(dep) == WHITE:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        colour[node] = BLACK
        return None

    for node in graph:
        if colour[node] == WHITE:
            found = visit(node)
            if found:
                return found
    return None


def layered_layout(steps: list[StepSpec]) -> dict[str, tuple[float, float]]:
    """Editor positions: x by dependency depth, y by order within the layer."""
    by_name = {s.name: s for s in steps}
    depth: dict[str, int] = {}

    def depth_of(name: str) -> int:
        if name not in depth:
            deps = by_name[name].depends_on
            depth[name] = 1 + max((depth_of(d) for d in deps), default=-1)
        return depth[name]

    seen_in_layer: dict[int, int] = {}
    positions = {}
    for step in steps:
        layer = depth_of(step.name)
        row = seen_in_layer.get(layer, 0)
        seen_in_layer[layer] = row + 1
        positions[step.name] = (100.0 + 250.0 * layer, 100.0 + 150.0 * row)
    return positions


# --------------------------------------------------------------------------- records


class _Record:
    """``from_row`` for every record: a dict row from psycopg, via the converter."""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Self:
        from .convert import row_converter

        return row_converter.structure(row, cls)


@attrs.frozen(kw_only=True)
class Directive(_Record):
    id: uuid.UUID
    title: str
    goal: str
    status: DirectiveStatus = DirectiveStatus.DRAFT
    requirements: list[Requirement] = attrs.field(factory=list)
    acceptance_criteria: list[AcceptanceCriterion] = attrs.field(factory=list)
    constraints: list[str] = attrs.field(factory=list)
    repository_url: str | None = None
    base_branch: str | None = None
    local_path: str | None = None
    autonomy_level: AutonomyLevel = AutonomyLevel.GUARDRAILS
    confidence_threshold_green: float = 0.8
    confidence_threshold_yellow: float = 0.5
    max_total_cost_usd: float | None = None
    total_cost_usd: float = 0.0
    max_total_tokens: int | None = None
    total_tokens: int = 0
    max_agent_turns: int | None = None
    total_agent_turns: int = 0
    max_wall_time_minutes: float | None = None
    started_at: datetime | None = None
    max_rework_cycles: int = 3
    max_chain_regenerations: int | None = None
    chain_generation_count: int = 0
    owner_id: str | None = None
    explicit_steps: list[StepSpec] | None = None
    verifier_config: dict[str, Any] | None = None
    agent: AgentSpec | None = None
    workspace: WorkspaceSpec = attrs.field(factory=WorkspaceSpec)
    notify: NotifySpec = attrs.field(factory=NotifySpec)
    repository: str | None = None
    """The top level of ``local_path``'s repository (None: no workspace)."""
    base_ref: str | None = None
    """The base branch the work started from, if it is a branch."""
    base_sha: str | None = None
    result_branch: str | None = None
    """The branch passed steps are merged into; None: steps share ``local_path``."""
    last_event_seq: int = 0
    lease_owner: uuid.UUID | None = None
    """The engine driving the directive (DESIGN §17); None: no engine holds it."""
    lease_epoch: int = 0
    """Grows by one with every change of owner: a write from an older epoch is refused."""
    lease_acquired_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None


@attrs.frozen(kw_only=True)
class Chain(_Record):
    id: uuid.UUID
    directive_id: uuid.UUID
    generation: int
    name: str
    description: str = ""
    rationale: str | None = None
    status: ChainStatus = ChainStatus.ACTIVE
    created_at: datetime | None = None


@attrs.frozen(kw_only=True)
class Step(_Record):
    id: uuid.UUID
    chain_id: uuid.UUID
    directive_id: uuid.UUID
    name: str
    step_type: StepType
    description: str = ""
    task_plan: str | None = None
    depends_on: list[uuid.UUID] = attrs.field(factory=list)
    requirement_ids: list[str] = attrs.field(factory=list)
    verifier_config: dict[str, Any] | None = None
    editor_x: float = 100.0
    editor_y: float = 100.0
    status: StepStatus = StepStatus.PENDING
    rework_count: int = 0
    attempt: int = 0
    confidence_score: float | None = None
    confidence_level: ConfidenceLevel | None = None
    last_evaluation_id: uuid.UUID | None = None
    status_reason: str | None = None
    """Why the step is where it is (a block's reason: its failing checks)."""
    branch: str | None = None
    """Its branch, when its directive has a workspace."""
    head_sha: str | None = None
    """Its branch's commit after its last attempt."""
    merge_sha: str | None = None
    """The result branch's commit that merged it."""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@attrs.frozen(kw_only=True)
class Task(_Record):
    """One execution of agent work: the planning task or one attempt at a step."""

    id: uuid.UUID
    directive_id: uuid.UUID
    kind: TaskKind
    instructions: str
    step_id: uuid.UUID | None = None
    attempt: int = 1
    status: TaskStatus = TaskStatus.QUEUED
    workdir: str | None = None
    exit_code: int | None = None
    cost_usd: float = 0.0
    tokens: int | None = None
    """Tokens the agent reported using; None: not reported or not usable."""
    turns: int | None = None
    """Agent turns it reported taking; None: not reported or not usable."""
    budget_usd: float | None = None
    """The directive's dollars left at dispatch (``DIRECTORATE_BUDGET_USD``); None: no
    dollar limit."""
    summary: str | None = None
    output_tail: str | None = None
    log_path: str | None = None
    plan_file: str | None = None
    cancel_requested_at: datetime | None = None
    """A cancel was asked for; the task's own report still decides how it ended."""
    cancel_reason: str | None = None
    pid: int | None = None
    """The agent's process, once it runs (None: not yet, or no process: a callable)."""
    pgid: int | None = None
    host: str | None = None
    """Where the agent's processes run."""
    process_started_at: datetime | None = None
    """When the agent's process started: with ``pid``, which process it is."""
    supervisor_pid: int | None = None
    """The process that owns the agent's and its descendants' (see ``verifiers.supervisor``)."""
    supervisor_started_at: datetime | None = None
    session_id: str | None = None
    """The agent's own session id, when its report named one (Claude Code's)."""
    engine_id: uuid.UUID | None = None
    """The engine that ran the task (DESIGN §17)."""
    stale_reported_at: datetime | None = None
    """Its agent reported after its engine had lost the directive's lease: a stale
    attempt (its cost counted, its outcome never the step's)."""
    agent_args: tuple[str, ...] = ()
    """Added to the agent's command for this attempt (``[agent] resume_args``); not
    stored: made again from the previous attempt's session id."""
    resume_session: str | None = None
    """The agent's session this attempt goes on with (a rework attempt of a tool
    kind); not stored, like ``agent_args``."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    created_at: datetime | None = None


@attrs.frozen(kw_only=True)
class Evaluation(_Record):
    id: uuid.UUID
    directive_id: uuid.UUID
    passed: bool
    composite_score: float
    confidence_level: ConfidenceLevel
    chain_id: uuid.UUID | None = None
    step_id: uuid.UUID | None = None
    task_id: uuid.UUID | None = None
    programmatic_results: list[dict[str, Any]] = attrs.field(factory=list)
    llm_results: list[dict[str, Any]] = attrs.field(factory=list)
    criteria_results: list[dict[str, Any]] = attrs.field(factory=list)
    summary: str = ""
    rework_instructions: str | None = None
    created_at: datetime | None = None


@attrs.frozen(kw_only=True)
class Approval(_Record):
    id: uuid.UUID
    directive_id: uuid.UUID
    approval_type: ApprovalType
    description: str
    status: ApprovalStatus = ApprovalStatus.PENDING
    step_id: uuid.UUID | None = None
    context: dict[str, Any] = attrs.field(factory=dict)
    responded_by: str | None = None
    response_note: str | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    responded_at: datetime | None = None


@attrs.frozen(kw_only=True)
class Event(_Record):
    id: uuid.UUID
    directive_id: uuid.UUID
    seq: int
    event_type: str
    severity: Severity = Severity.INFO
    data: dict[str, Any] = attrs.field(factory=dict)
    actor_type: ActorType = ActorType.SYSTEM
    actor_id: str | None = None
    step_id: uuid.UUID | None = None
    created_at: datetime | None = None


@attrs.frozen(kw_only=True)
class Command(_Record):
    """A durable control request from another process (DESIGN §12)."""

    id: uuid.UUID
    command: CommandType
    directive_id: uuid.UUID | None = None
    args: dict[str, Any] = attrs.field(factory=dict)
    status: CommandStatus = CommandStatus.PENDING
    reason: str | None = None
    # The directive's status right after an applied command (None for approvals).
    result: str | None = None
    created_at: datetime | None = None
    applied_at: datetime | None = None


@attrs.frozen(kw_only=True)
class EngineRecord(_Record):
    """An engine process (DESIGN §17): it holds the leases of the directives it drives
    for as long as its heartbeat keeps ``expires_at`` ahead of the database's clock."""

    id: uuid.UUID
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    stopped_at: datetime | None = None
    takes_over: bool = True
    """Whether it claims free and expired leases (a daemon does; ``run`` does not)."""
