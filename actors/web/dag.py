"""A chain drawn as SVG from its steps' stored layered-layout positions."""

from __future__ import annotations

from html import escape

from directorate.persistence.models import Step, StepStatus

NODE_W, NODE_H, MARGIN = 180.0, 60.0, 20.0
COLOURS = {
    StepStatus.PENDING: "#d0d4da",
    StepStatus.READY: "#9ec5fe",
    StepStatus.RUNNING: "#3d8bfd",
    StepStatus.EVALUATING: "#8c68cd",
    StepStatus.PASSED: "#20c997",
    StepStatus.REWORK: "#fd7e14",
    StepStatus.BLOCKED: "#dc3545",
    StepStatus.FAILED: "#b02a37",
    StepStatus.SKIPPED: "#adb5bd",
}
"""By status; the legend and the tests read the status from ``data-status``, not the colour."""


def chain_svg(steps: list[Step]) -> str:
    if not steps:
        return (
            '<svg class="dag" id="dag" width="300" height="60">'
            '<text x="10" y="35">no chain yet</text></svg>'
        )
    left = min(s.editor_x for s in steps) - MARGIN
    top = min(s.editor_y for s in steps) - MARGIN
    width = max(s.editor_x for s in steps) + NODE_W + MARGIN - left
    height = max(s.editor_y for s in steps) + NODE_H + MARGIN - top
    by_id = {s.id: s for s in steps}
    parts = [
        f'<svg class="dag" id="dag" xmlns="http://www.w3.org/2000/svg" role="img"'
        f' viewBox="{left:g} {top:g} {width:g} {height:g}" width="{width:g}" height="{height:g}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8"'
        ' markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"'
        ' fill="#6c757d"/></marker></defs>',
    ]
    for step in steps:
        for dependency in step.depends_on:
            source = by_id.get(dependency)
            if source is None:
                continue
            x1, y1 = source.editor_x + NODE_W, source.editor_y + NODE_H / 2
            x2, y2 = step.editor_x, step.editor_y + NODE_H / 2
            parts.append(
                f'<path class="edge" d="M {x1:g} {y1:g} C {x1 + 40:g} {y1:g} {x2 - 40:g} {y2:g}'
                f' {x2:g} {y2:g}" fill="none" stroke="#6c757d" marker-end="url(#arrow)"/>'
            )
    for step in steps:
        name = escape(step.name)
        label = escape(step.name if len(step.name) <= 22 else step.name[:21] + "…")
        parts.append(
            f'<g class="step" id="step-{escape(str(step.id))}" data-name="{name}"'
            f' data-status="{step.status}"><title>{name}: {step.status}</title>'
            f'<rect x="{step.editor_x:g}" y="{step.editor_y:g}" width="{NODE_W:g}"'
            f' height="{NODE_H:g}" rx="8" fill="{COLOURS[step.status]}" stroke="#343a40"/>'
            f'<text x="{step.editor_x + 10:g}" y="{step.editor_y + 25:g}">{label}</text>'
            f'<text class="status" x="{step.editor_x + 10:g}" y="{step.editor_y + 45:g}">'
            f"{step.status}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
