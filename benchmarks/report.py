"""The benchmark's figures: ratios to the ceiling, targets, the table and the JSON.

Pure functions of the measured numbers, so they are tested without a stack.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

MIB = 1024 * 1024


@dataclass
class Row:
    """One measured layer. `baseline` names the ceiling row its ratio is taken to."""

    key: str
    label: str
    value: float
    unit: str
    baseline: str | None = None
    ratio: float | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    name: str
    value: float
    threshold: float

    @property
    def met(self) -> bool:
        return self.value >= self.threshold


# (name, numerator row, denominator row, threshold)
TARGETS = (
    ("2/1 serve batched / ceiling", "serve_batched", "ceiling", 0.90),
    ("4/1 AI path / ceiling", "ai_path", "ceiling", 0.85),
    ("4/5 AI path / seed design", "ai_path", "seed_design", 1.0),
    ("6/1 pipeline, summaries off / ceiling", "pipeline_off", "ceiling", 0.75),
    (
        "2/3 batched / unbatched, short chunks, 64 concurrent",
        "serve_batched_short",
        "serve_unbatched_short",
        2.5,
    ),
)


def with_ratios(rows: list[Row]) -> list[Row]:
    """Fill each row's ratio to its baseline row, where both were measured."""
    values = {row.key: row.value for row in rows}
    for row in rows:
        if row.ratio is None and row.baseline and values.get(row.baseline):
            row.ratio = row.value / values[row.baseline]
    return rows


def targets(rows: Iterable[Row]) -> list[Target]:
    values = {row.key: row.value for row in rows}
    return [
        Target(name, values[top] / values[bottom], threshold)
        for name, top, bottom, threshold in TARGETS
        if values.get(top) is not None and values.get(bottom)
    ]


def batching_gains(rows: Iterable[Row]) -> dict[str, float]:
    """Serve batched over unbatched (row 2 / row 3), per text length."""
    values = {row.key: row.value for row in rows}
    gains = {}
    for variant, suffix in (("chunks", ""), ("short chunks", "_short")):
        batched = values.get(f"serve_batched{suffix}")
        unbatched = values.get(f"serve_unbatched{suffix}")
        if batched and unbatched:
            gains[variant] = batched / unbatched
    return gains


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks, q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def interval_union(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length covered by the intervals; overlaps count once."""
    total, reach = 0.0, -math.inf
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def _number(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _table(header: list[str], lines: list[list[str]]) -> list[str]:
    widths = [
        max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if position == 0 else cell.rjust(width)
            for position, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), "  ".join("-" * width for width in widths)] + [
        line(cells) for cells in lines
    ]


def render(report: Mapping[str, Any]) -> str:
    rows = [Row(**row) for row in report["rows"]]
    out = [
        f"Hey.sh benchmark, {report['corpus']['summary']}",
        f"machine: {report['machine']['summary']}",
        "",
    ]
    out += _table(
        ["row", "value", "unit", "ratio to 1", "notes"],
        [
            [row.label, _number(row.value), row.unit, _number(row.ratio), row.detail]
            for row in rows
        ],
    )
    gains = report.get("batching_gain") or {}
    if gains:
        out.append("")
        out += [
            f"2/3 serve batched / unbatched, {k}: {v:.2f}" for k, v in gains.items()
        ]
    memory = report.get("memory") or {}
    if memory:
        out.append("")
        out += _table(
            ["component", "idle MiB", "under load MiB"],
            [
                [
                    name,
                    _number(m.get("idle", 0) / MIB, 0),
                    _number(m.get("load", 0) / MIB, 0),
                ]
                for name, m in memory.items()
            ],
        )
    if report.get("cold_start_s") is not None:
        out.append(f"cold start of `heysh up`: {report['cold_start_s']:.1f} s")
    out.append("")
    for target in report.get("targets", []):
        mark = "met " if target["value"] >= target["threshold"] else "MISS"
        out.append(
            f"[{mark}] {target['name']}: {target['value']:.2f} "
            f"(target >= {target['threshold']:g})"
        )
    if report.get("wall_s") is not None:
        out.append(f"wall time: {report['wall_s']:.0f} s")
    return "\n".join(out)


def assemble(
    rows: list[Row],
    machine: Mapping[str, Any],
    corpus: Mapping[str, Any],
    memory: Mapping[str, Mapping[str, int]],
    cold_start_s: float | None,
    wall_s: float | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    rows = with_ratios(rows)
    return {
        "machine": dict(machine),
        "corpus": dict(corpus),
        "rows": [asdict(row) for row in rows],
        "batching_gain": batching_gains(rows),
        "targets": [{**asdict(target), "met": target.met} for target in targets(rows)],
        "memory": {name: dict(values) for name, values in memory.items()},
        "cold_start_s": cold_start_s,
        "wall_s": wall_s,
        **dict(extra or {}),
    }
