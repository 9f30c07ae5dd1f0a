"""The step graph: layered layout, edge labels, step outcomes, escaping."""

from __future__ import annotations

import html
import re
from typing import Any

from statefn._plan import normalise
from statefn.serve._graph import draw, edge_text, layout


def _plan(*steps: dict[str, Any]) -> Any:
    return normalise({"workflow": {"name": "w", "steps": list(steps)}})


DIAMOND = _plan(
    {"id": "hook", "webhook": True, "next": "fetch"},
    {"id": "fetch", "expression": "x", "next": {"clean": True, "alert": "on_job_failure"}},
    {"id": "clean", "expression": "x", "next": "upload"},
    {"id": "alert", "expression": "x", "next": "upload"},
    {"id": "upload", "expression": "x"},
)


def test_a_steps_column_is_its_longest_chain_of_edges() -> None:
    boxes = layout(DIAMOND)
    assert {step: box.layer for step, box in boxes.items()} == {
        "hook": 0, "fetch": 1, "clean": 2, "alert": 2, "upload": 3,
    }  # fmt: skip


def test_every_followable_edge_points_right_and_no_boxes_overlap() -> None:
    boxes = layout(DIAMOND)
    for step in DIAMOND.steps.values():
        for edge in step.next:
            assert boxes[edge.target].x > boxes[step.id].x
    corners = {(box.x, box.y) for box in boxes.values()}
    assert len(corners) == len(boxes)


def test_rows_follow_the_upstream_rows_so_edges_do_not_cross() -> None:
    plan = _plan(
        {"id": "a", "expression": "x", "next": "a2"},
        {"id": "b", "expression": "x", "next": "b2"},
        {"id": "b2", "expression": "x"},
        {"id": "a2", "expression": "x"},
    )
    boxes = layout(plan)
    assert boxes["a"].row == boxes["a2"].row
    assert boxes["b"].row == boxes["b2"].row


def test_an_edge_that_is_never_followed_may_point_back_and_is_dashed() -> None:
    plan = _plan(
        {"id": "a", "expression": "x", "next": "b"},
        {"id": "b", "expression": "x", "next": {"a": False}},
    )
    svg = str(draw(plan))
    assert layout(plan)["b"].layer == 1
    assert '<g class="edge never" data-from="b" data-to="a">' in svg


def test_edges_are_labelled_with_their_label_else_their_condition() -> None:
    plan = _plan(
        {"id": "a", "expression": "x", "next": {
            "b": {"condition": "len(state['data']) > 0", "label": "has rows"},
            "c": "on_job_failure",
            "d": True,
            "e": {"condition": True, "disabled": True},
        }},
        {"id": "b", "expression": "x"}, {"id": "c", "expression": "x"},
        {"id": "d", "expression": "x"}, {"id": "e", "expression": "x"},
    )  # fmt: skip
    texts = {edge.target: edge_text(edge) for edge in plan.steps["a"].next}
    assert texts == {"b": "has rows", "c": "on_job_failure", "d": "", "e": "(disabled)"}
    svg = str(draw(plan))
    assert ">has rows</text>" in svg
    assert ">on_job_failure</text>" in svg


def test_long_labels_are_shortened_with_the_whole_text_as_a_tooltip() -> None:
    condition = "state['data']['count'] > 1000 and upstream_step_id == 'a'"
    plan = _plan(
        {"id": "a", "expression": "x", "next": {"b": condition}},
        {"id": "b", "expression": "x"},
    )
    svg = str(draw(plan))
    assert "<title>state[&#39;data&#39;][&#39;count&#39;] &gt; 1000 and" in svg
    shown = re.search(r"</title>([^<]*)</text>", svg)
    assert shown is not None
    assert html.unescape(shown.group(1)) == condition[:16] + "…"


def test_steps_are_coloured_by_reason_and_unreached_steps_marked_not_run() -> None:
    svg = str(draw(DIAMOND, {"hook": "success", "fetch": "fail", "alert": "running"}))
    found = re.findall(r'<g class="node (?:job|trigger) (reason-\w+)" data-step="(\w+)"', svg)
    assert {step: css for css, step in found} == {
        "hook": "reason-success", "fetch": "reason-fail", "alert": "reason-running",
        "clean": "reason-none", "upload": "reason-none",
    }  # fmt: skip
    assert "<title>clean · not run</title>" in svg


def test_without_a_run_no_step_has_a_reason_and_triggers_are_marked() -> None:
    svg = str(draw(DIAMOND))
    assert "reason-" not in svg
    assert '<g class="node trigger" data-step="hook">' in svg


def test_steps_link_where_href_says() -> None:
    svg = str(draw(DIAMOND, href=lambda step_id: f"?step={step_id}&x=1"))
    assert '<a href="?step=upload&amp;x=1">' in svg


def test_ids_names_and_labels_are_escaped() -> None:
    plan = _plan(
        {"id": "<script>x</script>", "name": '"><img src=x onerror=alert(1)>',
         "expression": "x", "next": {"b": {"condition": True, "label": "</text><script>"}}},
        {"id": "b", "expression": "x"},
    )  # fmt: skip
    svg = str(draw(plan, {"b": "success"}, href=lambda step_id: f"/x?{step_id}"))
    assert "<script" not in svg
    assert "<img" not in svg
    assert "&lt;script&gt;x&lt;/script&gt;" in svg


def test_the_picture_is_as_big_as_its_boxes() -> None:
    svg = str(draw(DIAMOND))
    width, height = map(int, re.search(r'width="(\d+)" height="(\d+)"', svg).groups())  # type: ignore[union-attr]
    boxes = layout(DIAMOND)
    assert width >= max(box.x for box in boxes.values()) + 150
    assert height >= max(box.y for box in boxes.values()) + 40


def test_an_edge_that_skips_a_column_arcs_over_the_boxes_between() -> None:
    plan = _plan(
        {"id": "a", "expression": "x", "next": {"b": True, "c": True}},
        {"id": "b", "expression": "x", "next": "c"},
        {"id": "c", "expression": "x"},
    )
    boxes = layout(plan)
    assert (boxes["a"].y, boxes["b"].y, boxes["c"].y) == (boxes["b"].y,) * 3  # one row
    svg = str(draw(plan))
    path = re.search(r'data-from="a" data-to="c"><path d="([^"]+)"', svg)
    assert path is not None
    controls = [int(y) for y in re.findall(r",(-?\d+)", path.group(1))]
    assert min(controls) < boxes["b"].y  # above the top of b's box
    assert min(controls) >= 0  # and inside the picture
