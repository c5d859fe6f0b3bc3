"""Planning (DESIGN §7): the planning task's instructions, plan ingestion, the default chain,
and the instructions of each step's task (the seed's formats)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from directorate.persistence.convert import structure_plan
from directorate.persistence.errors import InvalidInput
from directorate.persistence.models import Directive, Step, StepSpec, StepType, Task, TaskStatus
from directorate.persistence.validation import nested_deeper_than

from .core.state import PlanOutcome
from .evaluation import check_verifier_config
from .runners import TaskResult

MAX_PLAN_BYTES = 1_000_000
"""Largest plan file read (the chain's steps are capped too: ``MAX_CHAIN_STEPS``)."""
MAX_PLAN_DEPTH = 20
"""Deepest nesting of lists and objects in a plan; a step's verifiers need about 7."""
GOAL_IN_DESCRIPTION = 500
"""How much of the goal the default chain's step descriptions quote: each step's
task has the whole goal anyway, and a step's description is read on every decision."""


def _bullets(lines: list[str]) -> str:
    return "\n".join(lines) if lines else "(none)"


def directive_brief(directive: Directive) -> str:
    return f"""## Directive: {directive.title}

## Goal
{directive.goal}

## Requirements
{_bullets([f"- {r.id}: {r.description}" for r in directive.requirements])}

## Acceptance Criteria
{_bullets([f"- {c.id}: {c.criterion}" for c in directive.acceptance_criteria])}

## Constraints
{_bullets([f"- {c}" for c in directive.constraints])}

## Repository: {directive.repository_url or directive.local_path or "(not specified)"}"""


def planning_instructions(
    directive: Directive, *, replan_context: str | None = None, plan_file: str | None = None
) -> str:
    """What the planning agent is asked to do; it answers in ``plan_file`` (also in
    ``$DIRECTORATE_PLAN_FILE``)."""
    where = (
        f"the file {plan_file} (also named by the environment variable DIRECTORATE_PLAN_FILE)"
        if plan_file
        else "the file named by the environment variable DIRECTORATE_PLAN_FILE"
    )
    replan = f"\n## Earlier attempt\n{replan_context}\n" if replan_context else ""
    return f"""You are planning an execution chain for a directive.

{directive_brief(directive)}
{replan}
## Your Task
Analyze the repository and create a chain of execution steps. Write the chain as
JSON to {where}:

{{"steps": [{{"name": "step-name", "step_type": "implement",
  "description": "What this step accomplishes", "depends_on": [],
  "task_plan": "Detailed instructions for the step executor"}}]}}

### Step types
Use these step types: research, design, implement, test, review, document

### Dependencies
Each step can depend on other steps by name. Use the `depends_on` field with an
array of step names. Steps with no dependencies will run in parallel.

### Guidelines
1. Break the work into logical, independently executable steps
2. Each step should be completable by a single coding-agent session
3. Use dependencies to enforce ordering where needed
4. Include a "test" or "verify" step at the end
5. Keep step names in kebab-case
6. The `task_plan` field should contain detailed instructions for the agent that
   will execute the step

When you have written the plan file, your task is complete."""


def default_chain(directive: Directive) -> list[StepSpec]:
    """The seed's fallback chain: research -> implement -> test."""
    goal = directive.goal
    if len(goal) > GOAL_IN_DESCRIPTION:
        goal = goal[:GOAL_IN_DESCRIPTION] + "..."
    return [
        StepSpec(
            name="research",
            step_type=StepType.RESEARCH,
            description=f"Research and understand the requirements for: {goal}",
        ),
        StepSpec(
            name="implement",
            step_type=StepType.IMPLEMENT,
            description=f"Implement the solution for: {goal}",
            depends_on=["research"],
        ),
        StepSpec(
            name="test",
            step_type=StepType.TEST,
            description="Test and verify the implementation",
            depends_on=["implement"],
        ),
    ]


def read_plan(plan_file: str | None, known: set[str] | None = None) -> list[StepSpec]:
    """The validated steps of a plan file; ``InvalidInput`` says why it cannot be used."""
    if not plan_file:
        raise InvalidInput("plan: the planning task had no plan file")
    path = Path(plan_file)
    if not path.is_file():
        raise InvalidInput("plan: the planning agent wrote no plan file")
    if path.stat().st_size > MAX_PLAN_BYTES:
        raise InvalidInput(f"plan: the plan file is larger than {MAX_PLAN_BYTES} bytes")
    steps = structure_plan(parse_plan(path.read_bytes()), known=known or set())
    for index, step in enumerate(steps):
        check_verifier_config(step.verifiers, None, where=f"plan.steps[{index}]")
    return steps


def parse_plan(raw: bytes) -> Any:
    """A plan file's JSON; ``InvalidInput`` says in one line why it is none.

    Checked here rather than left to the parser: a NUL byte or bad UTF-8 gets its
    own reason, and nesting a documented depth rather than whatever the parser's
    recursion limit allows on the calling thread.
    """
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise InvalidInput(f"plan: a NUL byte at offset {nul}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"plan: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    too_deep = InvalidInput(f"plan: nested more than {MAX_PLAN_DEPTH} levels deep")
    try:
        data = json.loads(text)
    except RecursionError:
        raise too_deep from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"plan: not JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise InvalidInput(f"plan: not usable JSON ({str(exc).partition(':')[0]})") from None
    if nested_deeper_than(data, MAX_PLAN_DEPTH):
        raise too_deep
    return data


def step_instructions(
    directive: Directive, step: Step, *, rework_instructions: str | None = None, attempt: int = 1
) -> str:
    """The seed's step task format, plus the rework instructions of a failed attempt."""
    body = step.task_plan or step.description or "Complete this step."
    text = f"## Step: {step.name}\n\n{body}\n\n## Directive Goal\n{directive.goal}"
    if directive.acceptance_criteria:
        criteria = "\n".join(f"- {c.id}: {c.criterion}" for c in directive.acceptance_criteria)
        text += f"\n\n## Acceptance Criteria\n{criteria}"
    if rework_instructions:
        text += (
            f"\n\n## Rework (attempt {attempt})\n"
            "The previous attempt did not pass verification. Fix the following:\n\n"
            f"{rework_instructions}"
        )
    return text


def plan_outcome(
    directive: Directive, task: Task, status: TaskStatus, carried: Mapping[str, Step]
) -> PlanOutcome:
    """The plan a finished planning task left, or the default chain and why not.

    Whatever the agent wrote (too large, too deep, not JSON, a NUL byte, a cycle)
    gives the default chain with the reason, never an error.
    """
    fallback = tuple(default_chain(directive))
    if status is not TaskStatus.SUCCEEDED:
        return PlanOutcome(steps=fallback, rejected=f"Planning task {status}")
    try:
        steps = read_plan(task.plan_file, known=set(carried))
    except InvalidInput as exc:
        return PlanOutcome(steps=fallback, rejected=str(exc))
    except (RecursionError, ValueError) as exc:  # too deep to parse, or not text
        return PlanOutcome(steps=fallback, rejected=f"plan: unreadable ({exc!r:.200})")
    return PlanOutcome(steps=tuple(steps))


def prepare_plan_file(plan_file: str, timeout_s: float = 30.0) -> None:
    """Make the plan file's folder, and when it is inside a git repository keep it
    out of git (``info/exclude``): a plan is no change to the repository."""
    folder = Path(plan_file).parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--git-path", "info/exclude"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except (OSError, subprocess.TimeoutExpired):
        return  # no git here, or none that answers: nothing to keep the file out of
    if done.returncode != 0:
        return
    exclude = Path(done.stdout.strip())
    if not exclude.is_absolute():
        exclude = folder / exclude
    pattern = f"{folder.name}/"  # at any depth: local_path may be a subfolder
    existing = exclude.read_text().splitlines() if exclude.exists() else []
    if pattern not in existing:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as out:
            out.write(f"{pattern}\n")


class PlanFolder:
    """Around a planning task (``workers.TaskAround``): its plan file's folder made
    and kept out of git before the agent runs, on the task's own thread."""

    def prepare(self, task: Task) -> None:
        if task.plan_file:
            prepare_plan_file(task.plan_file)

    def finish(self, task: Task, result: TaskResult) -> TaskResult:
        return result
