"""What the command line draws on a terminal, with rich: the chain as a table that
fits the terminal's width (long cells are cut with an ellipsis; a resized terminal
gets the new width on the next draw), statuses in colour. Off a terminal rich
writes no colour codes, and ``show`` prints the plain lines of ``views`` instead.
"""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from directorate.persistence.models import Directive, Step, Task

from . import views

STYLES = {
    "passed": "green",
    "completed": "green",
    "running": "cyan",
    "evaluating": "cyan",
    "planning": "cyan",
    "ready": "blue",
    "rework": "magenta",
    "blocked": "red",
    "failed": "red",
    "cancelled": "red",
    "paused": "yellow",
}


def status_text(status: str) -> Text:
    return Text(str(status), style=STYLES.get(str(status), ""))


NARROW = 72
"""Below this many columns the table keeps the step, its status and attempt only."""


def chain_table(steps: list[Step], tasks: list[Task], width: int = 120) -> Table:
    """The chain by dependency depth: step, status, attempt, and where ``width``
    allows, confidence, elapsed and work (its commit or branch)."""
    wide = width >= NARROW
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", expand=True)
    # The figures keep their width; the step's name gives way to them (an ellipsis).
    table.add_column("step", no_wrap=True, overflow="ellipsis", ratio=1, min_width=8)
    table.add_column("status", no_wrap=True, min_width=10)
    table.add_column("attempt", justify="right", no_wrap=True, min_width=7)
    if wide:
        table.add_column("confidence", no_wrap=True, min_width=10)
        table.add_column("elapsed", justify="right", no_wrap=True, min_width=7)
        table.add_column("work", no_wrap=True, overflow="ellipsis", max_width=24)
    depths = views.step_depths(steps)
    times = views.step_times(tasks)
    for step in sorted(steps, key=lambda s: (depths[s.id], s.editor_y, s.name)):
        depth = depths[step.id]
        cells: list[str | Text] = [
            ("  " * (depth - 1) + "└─ " if depth else "") + step.name,
            status_text(step.status),
            str(step.attempt),
        ]
        if wide:
            start, end = times.get(step.id, (None, None))
            work = (
                f"merged {step.merge_sha[:12]}"
                if step.merge_sha
                else f"at {step.head_sha[:12]}"
                if step.head_sha
                else step.branch or ""
            )
            cells += [views.confidence(step), views.elapsed(start, end) if start else "-", work]
        table.add_row(*cells)
    return table


def live_view(
    directive: Directive,
    steps: list[Step],
    tasks: list[Task],
    recent: list[str],
    elapsed_s: float,
    width: int = 120,
) -> RenderableType:
    """``run``'s screen: the directive's status and cost, its chain, the last events."""
    header = Text.assemble(
        status_text(directive.status),
        f"  cost ${directive.total_cost_usd:.2f}  elapsed {elapsed_s:.1f}s",
    )
    lines = [Text(line, no_wrap=True, overflow="ellipsis") for line in recent]
    return Group(header, chain_table(steps, tasks, width), Text(""), *lines)


def console() -> Console:
    """stdout's console: its width follows the terminal's; colour only on a terminal."""
    return Console(highlight=False, soft_wrap=False)
