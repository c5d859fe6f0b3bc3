"""The terminal's table, rendered by rich at a fixed width: it fits, long cells are
cut with an ellipsis, and off a terminal there is no colour code."""

from __future__ import annotations

import io
import uuid

from rich.console import Console

from directorate.actors.cli import screen
from directorate.persistence.models import Directive, Step, StepStatus

CHAIN = uuid.uuid4()
DIRECTIVE = uuid.uuid4()


def step(name: str, status: StepStatus, *after: Step) -> Step:
    return Step(
        id=uuid.uuid4(),
        chain_id=CHAIN,
        directive_id=DIRECTIVE,
        name=name,
        step_type="implement",
        status=status,
        depends_on=[s.id for s in after],
        attempt=1,
    )


def render(renderable: object, width: int, *, terminal: bool) -> str:
    out = io.StringIO()
    colours = "standard" if terminal else None  # as rich decides for a real stdout
    Console(file=out, width=width, force_terminal=terminal, color_system=colours).print(renderable)
    return out.getvalue()


def chain() -> list[Step]:
    first = step("write-the-parser-for-the-very-long-configuration-format", StepStatus.PASSED)
    return [first, step("second", StepStatus.RUNNING, first)]


def test_the_table_fits_the_width_and_cuts_long_names() -> None:
    for width in (40, 60, 100):
        text = render(screen.chain_table(chain(), [], width), width, terminal=False)
        lines = text.splitlines()
        assert all(len(line) <= width for line in lines), (width, text)
        assert any("second" in line for line in lines)
    narrow = render(screen.chain_table(chain(), [], 40), 40, terminal=False)
    assert "…" in narrow and "configuration-format" not in narrow
    wide = render(screen.chain_table(chain(), [], 160), 160, terminal=False)
    assert "confidence" in wide and "confidence" not in narrow
    assert "write-the-parser-for-the-very-long-configuration-format" in wide


def test_colour_only_on_a_terminal() -> None:
    assert "\x1b[" not in render(screen.chain_table(chain(), []), 80, terminal=False)
    coloured = render(screen.chain_table(chain(), []), 80, terminal=True)
    assert "\x1b[32mpassed" in coloured and "\x1b[36mrunning" in coloured


def test_the_live_view_heads_with_status_and_cost() -> None:
    directive = Directive(id=DIRECTIVE, title="t", goal="g", status="active", total_cost_usd=1.5)
    text = render(
        screen.live_view(directive, chain(), [], ["  0.1s  an event"], 2.0), 80, terminal=False
    )
    assert text.splitlines()[0].startswith("active  cost $1.50  elapsed 2.0s")
    assert "an event" in text.splitlines()[-1]
