"""A workflow's steps and edges drawn as an SVG picture, left to right.

The layout is layered: a step's column is the length of the longest chain of followable
edges that leads to it, so every followable edge points right; within a column, steps sit
in the order of their upstream steps' rows (two barycentre sweeps, enough for the small
graphs workflows are). Edges that can never be followed (``false`` or disabled) are drawn
dashed and play no part in the layout, since validation lets them close a cycle.

When a run is shown, each step is coloured by the reason its last step run ended with
(``running`` while it runs); steps the run never reached are greyed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from markupsafe import Markup, escape

from statefn._plan import Edge, Plan, Step

__all__ = ["Box", "draw", "edge_text", "layout"]

_WIDTH = 150
_HEIGHT = 40
_GAP_X = 110
_GAP_Y = 22
_PAD = 12
_LABEL_CHARS = 17
_NAME_CHARS = 20
_NOT_RUN = "none"
# How far past the boxes' edges the curves of edges that skip columns reach.
_ARC = 40


@dataclass(frozen=True, slots=True)
class Box:
    """Where a step is drawn: its column (layer) and row, and the top-left corner."""

    step_id: str
    layer: int
    row: int
    x: int
    y: int


def _layers(plan: Plan) -> dict[str, int]:
    """Each step's column: the longest chain of followable edges leading to it."""
    parents: dict[str, list[str]] = {step_id: [] for step_id in plan.steps}
    for step in plan.steps.values():
        for edge in step.next:
            if edge.followable:
                parents[edge.target].append(step.id)
    layers: dict[str, int] = {}

    def depth(step_id: str) -> int:
        if step_id not in layers:
            layers[step_id] = max((depth(parent) + 1 for parent in parents[step_id]), default=0)
        return layers[step_id]

    for step_id in plan.steps:
        depth(step_id)
    return layers


def _order(plan: Plan, layers: dict[str, int]) -> list[list[str]]:
    """The steps of each column, top to bottom."""
    columns: list[list[str]] = [[] for _ in range(max(layers.values(), default=-1) + 1)]
    for step_id in plan.steps:
        columns[layers[step_id]].append(step_id)
    neighbours: dict[str, list[str]] = {step_id: [] for step_id in plan.steps}
    for step in plan.steps.values():
        for edge in step.next:
            if edge.followable:
                neighbours[edge.target].append(step.id)
                neighbours[step.id].append(edge.target)
    for sweep in (range(1, len(columns)), range(len(columns) - 2, -1, -1)):
        for index in sweep:
            row = {step_id: r for column in columns for r, step_id in enumerate(column)}
            near = columns[index - 1] if sweep.step == 1 else columns[index + 1]

            def centre(step_id: str, near: list[str] = near, row: dict[str, int] = row) -> float:
                linked = [row[other] for other in neighbours[step_id] if other in near]
                return sum(linked) / len(linked) if linked else row[step_id]

            columns[index].sort(key=centre)
    return columns


def layout(plan: Plan) -> dict[str, Box]:
    """Where each step of ``plan`` goes; columns are centred on the tallest one."""
    layers = _layers(plan)
    columns = _order(plan, layers)
    skips = any(
        layers[edge.target] > layers[step.id] + 1
        for step in plan.steps.values()
        for edge in step.next
    )
    top = _PAD + (_ARC if skips else 0)
    tallest = max((len(column) for column in columns), default=0)
    boxes: dict[str, Box] = {}
    for layer, column in enumerate(columns):
        offset = (tallest - len(column)) * (_HEIGHT + _GAP_Y) // 2
        for row, step_id in enumerate(column):
            x = _PAD + layer * (_WIDTH + _GAP_X)
            y = top + offset + row * (_HEIGHT + _GAP_Y)
            boxes[step_id] = Box(step_id, layer, row, x, y)
    return boxes


def edge_text(edge: Edge) -> str:
    """What an edge is labelled with: its label, else its condition ("" for ``true``)."""
    if edge.label is not None:
        text = edge.label
    elif isinstance(edge.condition, str):
        text = edge.condition
    elif edge.condition is None or edge.condition is False:
        text = "never"
    elif edge.condition is True:
        text = ""
    else:
        text = "(a Python callable)"
    return f"{text} (disabled)".strip() if edge.disabled else text


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _edge(source: Box, target: Box, edge: Edge) -> str:
    sx, sy = source.x + _WIDTH, source.y + _HEIGHT // 2
    tx, ty = target.x, target.y + _HEIGHT // 2
    if target.layer == source.layer + 1:
        bend = _GAP_X // 2
        path = f"M{sx},{sy} C{sx + bend},{sy} {tx - bend},{ty} {tx},{ty}"
        mx, my = (sx + tx) // 2, (sy + ty) // 2
    elif target.layer > source.layer:  # over the columns in between, not through their boxes
        top = min(source.y, target.y) - _ARC
        path = f"M{sx},{sy} C{sx + _GAP_X},{top} {tx - _GAP_X},{top} {tx},{ty}"
        mx, my = (sx + tx) // 2, (3 * top + (sy + ty) // 2) // 4
    else:  # below the boxes, back to the left: only never-followed edges go this way
        low = max(source.y, target.y) + _HEIGHT + _ARC
        path = f"M{sx},{sy} C{sx + _GAP_X},{low} {tx - _GAP_X},{low} {tx},{ty}"
        mx, my = (sx + tx) // 2, (3 * low + (sy + ty) // 2) // 4 + 12
    kind = "edge" if edge.followable else "edge never"
    text = edge_text(edge)
    label = ""
    if text:
        label = (
            f'<text class="edge-label" x="{mx}" y="{my - 4}" text-anchor="middle">'
            f"<title>{escape(text)}</title>{escape(_short(text, _LABEL_CHARS))}</text>"
        )
    return (
        f'<g class="{kind}" data-from="{escape(source.step_id)}" '
        f'data-to="{escape(target.step_id)}">'
        f'<path d="{path}" marker-end="url(#arrow)"/>{label}</g>'
    )


def _node(step: Step, box: Box, reason: str | None, href: str | None) -> str:
    classes = ["node", "trigger" if step.is_trigger else "job"]
    if reason is not None:
        classes.append(f"reason-{reason}")
    subtitle = "trigger" if step.is_trigger else ", ".join(step.adaptors) or "job"
    if step.name and step.name != step.id:
        subtitle = step.name
    shown = "not run" if reason == _NOT_RUN else reason
    tooltip = " · ".join(part for part in (step.id, step.name, shown) if part)
    inner = (
        f"<title>{escape(tooltip)}</title>"
        f'<rect x="{box.x}" y="{box.y}" width="{_WIDTH}" height="{_HEIGHT}" rx="5"/>'
        f'<text class="step-id" x="{box.x + 8}" y="{box.y + 16}">'
        f"{escape(_short(step.id, _NAME_CHARS))}</text>"
        f'<text class="step-sub" x="{box.x + 8}" y="{box.y + 31}">'
        f"{escape(_short(subtitle, _NAME_CHARS + 4))}</text>"
    )
    if href is not None:
        inner = f'<a href="{escape(href)}">{inner}</a>'
    return f'<g class="{" ".join(classes)}" data-step="{escape(step.id)}">{inner}</g>'


def draw(
    plan: Plan,
    reasons: Mapping[str, str] | None = None,
    href: Callable[[str], str | None] | None = None,
) -> Markup:
    """The SVG picture of ``plan``'s graph.

    ``reasons`` maps a step id to how its last step run ended (or ``running``); when given,
    steps it does not name are drawn as not run. ``href`` gives the link a step's box opens.
    """
    boxes = layout(plan)
    width = max((box.x for box in boxes.values()), default=0) + _WIDTH + _PAD
    height = max((box.y for box in boxes.values()), default=0) + _HEIGHT + _PAD
    if any(
        boxes[edge.target].layer <= boxes[step.id].layer
        for step in plan.steps.values()
        for edge in step.next
    ):
        height += _ARC  # room for the edges drawn underneath, back to the left
    edges = [
        _edge(boxes[step.id], boxes[edge.target], edge)
        for step in plan.steps.values()
        for edge in step.next
    ]
    nodes = [
        _node(
            step,
            boxes[step.id],
            None if reasons is None else reasons.get(step.id, _NOT_RUN),
            None if href is None else href(step.id),
        )
        for step in plan.steps.values()
    ]
    label = f"Step graph of {plan.name or plan.workflow_id or 'the workflow'}"
    return Markup(
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{escape(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        f"</defs>{''.join(edges)}{''.join(nodes)}</svg>"
    )
