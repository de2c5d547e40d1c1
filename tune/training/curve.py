"""`training_curve.svg`: a run's training curves drawn from its `metrics.jsonl`, because people look
at a curve rather than read a log.

``write_training_curve`` reads ``metrics.jsonl`` (one JSON object per log event, written by
tune.training.progress: `step`, `loss`, `lr`, and for DPO TRL's `rewards/margins` and
`rewards/accuracies`) and writes one standalone SVG, drawn with the standard library only:

    - a top panel: `loss` against `step` on the left axis, the learning rate `lr` on a second axis
      on the right (from 0);
    - for a DPO run (records carrying `rewards/margins`), a second panel: the reward margin on the
      left axis (its grid includes 0: above it the policy prefers the chosen answer) and the reward
      accuracy on the right axis (0 to 1).

Both panels share the step axis. Each has axes with ticks and labels, a grid and a legend; the
picture's title names the run and its method (``curve_title``). Each series is one ``<polyline>``
(``data-series`` = its metrics key) with one point per logged step that has a finite value of it
(a NaN loss, or a record without the key, is left out of that series, not drawn as 0); a record
logged twice for the same step (an interrupted line) counts once, the later one. Up to
``MARKERS_UP_TO`` points also get a dot each, so that a short run's single points show.

A run with no finite logged loss (no `metrics.jsonl`, an empty one, zero steps) gets no picture:
``write_training_curve`` returns None and removes a picture an earlier run left at the same places.
Lines of `metrics.jsonl` that are not JSON objects (a line cut short by a crash) are skipped.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from tune.config.schema import Recipe

CURVE_FILE = "training_curve.svg"
MARKERS_UP_TO = 40

WIDTH = 780
LEFT, RIGHT = 84, 92  # room for the left and right axes' tick labels and names
TITLE_BAND = 62  # the title and the first panel's legend
PANEL_HEIGHT = 230
BETWEEN_PANELS = 92  # step ticks, the step label, the next panel's legend
BOTTOM = 52
GRID, AXIS, TEXT = "#e6e6e6", "#444444", "#222222"


@dataclass(frozen=True)
class Series:
    """One line of the picture: the metrics key it draws, its legend label, color and dash pattern."""

    key: str
    label: str
    color: str
    dash: str | None = None


LOSS = Series("loss", "loss", "#1f77b4")
LR = Series("lr", "learning rate (lr)", "#ff7f0e", "6 4")
MARGIN = Series("rewards/margins", "reward margin (chosen - rejected)", "#2ca02c")
ACCURACY = Series("rewards/accuracies", "reward accuracy", "#9467bd", "6 4")


def read_metrics(metrics_path: Path) -> list[dict]:
    """The records of ``metrics_path`` in step order, one per step (the lines of a step merged, the later's
    values winning: a training line and its step's evaluation line); [] when absent."""
    if not metrics_path.exists():
        return []
    by_step: dict[int, dict] = {}
    for line in metrics_path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and _number(record.get("step")) is not None:
            by_step.setdefault(int(record["step"]), {}).update(record)
    return [by_step[step] for step in sorted(by_step)]


def curve_title(recipe: Recipe, run_dir: Path) -> str:
    """`<run folder>: <METHOD>, <how the weights train>, <model>`, e.g. `run-1: SFT, LoRA + DoRA, tiny-llm-jp-4-8b`."""
    method = recipe.method
    name = method.name.upper()
    if method.name == "dpo":
        name += f" ({method.dpo.loss_type}, beta {method.dpo.beta:g})"
    weights = {"none": "full", "lora": "LoRA", "qlora": "QLoRA"}[method.peft]
    if method.lora is not None and method.peft != "none":
        weights += "".join([" + DoRA" if method.lora.dora else "", " + rsLoRA" if method.lora.rslora else ""])
    return f"{run_dir.name}: {name}, {weights}, {recipe.model.name}"


def write_training_curve(metrics_path: Path, out_path: Path, title: str, copy_to: Iterable[Path] = ()) -> Path | None:
    """Draw ``metrics_path`` into ``out_path`` (an SVG) and copy it, same file name, into each folder of
    ``copy_to``; the written path, or None (and no picture anywhere) when no loss was logged."""
    svg = training_curve_svg(read_metrics(metrics_path), title)
    targets = [out_path, *(Path(folder) / out_path.name for folder in copy_to)]
    if svg is None:
        for target in targets:
            target.unlink(missing_ok=True)
        return None
    out_path.write_text(svg, encoding="utf-8")
    for target in targets[1:]:
        shutil.copyfile(out_path, target)
    return out_path


def training_curve_svg(records: list[dict], title: str) -> str | None:
    """The SVG text of the picture for ``records`` (in step order), None when none has a finite loss."""
    if not _points(records, LOSS.key):
        return None
    panels = [(LOSS, LR)]
    if _points(records, MARGIN.key) or _points(records, ACCURACY.key):
        panels.append((MARGIN, ACCURACY))
    steps = [int(r["step"]) for r in records]
    x_ticks = _ticks(min(steps), max(steps), integer=True)
    height = TITLE_BAND + len(panels) * PANEL_HEIGHT + (len(panels) - 1) * BETWEEN_PANELS + BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12" fill="{TEXT}">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="{WIDTH / 2:g}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    for index, (left, right) in enumerate(panels):
        top = TITLE_BAND + index * (PANEL_HEIGHT + BETWEEN_PANELS)
        out += _panel(records, top, x_ticks, left, right)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _panel(records: list[dict], top: float, x_ticks: list[float], left: Series, right: Series) -> list[str]:
    """One panel: grid, both y axes, the step axis, the two series and their legend."""
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, top, top + PANEL_HEIGHT
    left_points, right_points = _points(records, left.key), _points(records, right.key)
    if left is MARGIN:
        values = [v for _, v in left_points] + [0.0]
        left_ticks = _ticks(min(values), max(values))
        right_ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
    else:
        left_ticks = _ticks(*_extent(left_points))
        right_ticks = _ticks(0.0, _extent(right_points)[1]) if right_points else []  # lr from 0

    def x_at(step: float) -> float:
        return x0 + (step - x_ticks[0]) / (x_ticks[-1] - x_ticks[0]) * (x1 - x0)

    def y_at(value: float, ticks: list[float]) -> float:
        return y1 - (value - ticks[0]) / (ticks[-1] - ticks[0]) * (y1 - y0)

    out = [f'<g class="panel" data-series={quoteattr(left.key + " " + right.key)}>']
    for tick in left_ticks:  # horizontal grid and the left axis' tick labels
        y = y_at(tick, left_ticks)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{left.color}">{_label(tick)}</text>')
    for tick in x_ticks:  # vertical grid and the step axis' tick labels
        x = x_at(tick)
        out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" stroke="{GRID}"/>')
        out.append(f'<text x="{x:.1f}" y="{y1 + 17}" text-anchor="middle">{_label(tick)}</text>')
    for tick in right_ticks:
        y = y_at(tick, right_ticks)
        out.append(f'<text x="{x1 + 6}" y="{y + 4:.1f}" fill="{right.color}">{_label(tick)}</text>')
    out.append(f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="none" stroke="{AXIS}"/>')
    middle = (y0 + y1) / 2
    out += [
        f'<text class="axis-label" x="{(x0 + x1) / 2:g}" y="{y1 + 36}" text-anchor="middle">step</text>',
        f'<text class="axis-label" transform="rotate(-90 {x0 - 62} {middle:g})" x="{x0 - 62}" y="{middle:g}" '
        f'text-anchor="middle" fill="{left.color}">{escape(left.label)}</text>',
    ]
    if right_ticks:
        out.append(f'<text class="axis-label" transform="rotate(90 {x1 + 74} {middle:g})" x="{x1 + 74}" '
                   f'y="{middle:g}" text-anchor="middle" fill="{right.color}">{escape(right.label)}</text>')
    for series, points, ticks in ((left, left_points, left_ticks), (right, right_points, right_ticks)):
        if points:
            out += _line(series, [(x_at(s), y_at(v, ticks)) for s, v in points])
    out += _legend([s for s, p in ((left, left_points), (right, right_points)) if p], x0, y0 - 12)
    out.append("</g>")
    return out


def _line(series: Series, xy: list[tuple[float, float]]) -> list[str]:
    dash = f' stroke-dasharray="{series.dash}"' if series.dash else ""
    coordinates = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    out = [f'<polyline class="series" data-series={quoteattr(series.key)} points="{coordinates}" fill="none" '
           f'stroke="{series.color}" stroke-width="2"{dash}/>']
    if len(xy) <= MARKERS_UP_TO:
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{series.color}"/>' for x, y in xy]
    return out


def _legend(series: list[Series], x: float, y: float) -> list[str]:
    out = ['<g class="legend">']
    for item in series:
        dash = f' stroke-dasharray="{item.dash}"' if item.dash else ""
        out.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 24}" y2="{y - 4}" stroke="{item.color}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{x + 30}" y="{y}">{escape(item.label)}</text>')
        x += 44 + 7 * len(item.label)
    out.append("</g>")
    return out


def _points(records: list[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) of every record with a finite number at ``key``."""
    points = []
    for record in records:
        value = _number(record.get(key))
        if value is not None:
            points.append((int(record["step"]), value))
    return points


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _extent(points: list[tuple[int, float]]) -> tuple[float, float]:
    values = [v for _, v in points]
    return min(values), max(values)


def _ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [low, high]: about ``count`` intervals of 1, 2, 2.5 or 5 x 10^k
    (whole numbers when ``integer``); the first and last tick bound the axis."""
    if high == low:
        pad = 1.0 if integer or low == 0 else abs(low) * 0.1
        low, high = low - pad, high + pad
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    if integer:
        step = max(1.0, float(round(step)))
    start, end = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [float(f"{i * step:.12g}") for i in range(start, end + 1)]


def _label(value: float) -> str:
    """A tick label: `0`, `1200`, `0.25`, `2.5e-05` (ticks are round numbers: 6 digits show them whole)."""
    return f"{value:.6g}"
