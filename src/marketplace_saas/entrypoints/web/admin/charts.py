"""The hourly usage chart, drawn on the server: geometry here, markup in `_chart.html` (escaped).

One chart per metric: for each hour, a bar of what was ingested (usage records, by the window
they count in) and, beside it, a bar of what Google accepted (the report ledger). Windows start
where an entitlement's activation or plan change put them, not always on the hour: each counts in
the hour it starts in (two windows of one hour, split by a plan change, add up).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

WIDTH = 720
HEIGHT = 220
PAD_LEFT = 56
PAD_BOTTOM = 28
PAD_TOP = 12


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str  # ingested | reported
    label: str  # the hover title


@dataclass(frozen=True)
class Tick:
    x: float
    text: str


@dataclass(frozen=True)
class Chart:
    metric: str
    width: int
    height: int
    bars: list[Bar]
    ticks: list[Tick]
    max_value: Decimal
    baseline: float
    ingested_total: Decimal
    reported_total: Decimal


def _number(value: Decimal) -> str:
    return f"{value.normalize():f}" if value else "0"


def hours(start: datetime, end: datetime) -> list[datetime]:
    out = []
    moment = start
    while moment < end:
        out.append(moment)
        moment += timedelta(hours=1)
    return out


def _by_hour(cells: dict[datetime, dict[str, Decimal]]) -> dict[datetime, dict[str, Decimal]]:
    """Window start -> values, summed per whole hour."""
    merged: dict[datetime, dict[str, Decimal]] = {}
    for start, cell in cells.items():
        slot = merged.setdefault(start.replace(minute=0, second=0, microsecond=0), {})
        for name, value in cell.items():
            slot[name] = slot.get(name, Decimal(0)) + value
    return merged


def build_charts(
    series: dict[str, dict[datetime, dict[str, Decimal]]], start: datetime, end: datetime
) -> list[Chart]:
    """One chart per metric over the hours from `start` to `end`."""
    slots = hours(start, end)
    charts = []
    plot_width = WIDTH - PAD_LEFT - 8
    plot_height = HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = plot_width / max(len(slots), 1)
    bar_width = max(slot * 0.4, 1.0)
    baseline = HEIGHT - PAD_BOTTOM
    for metric in sorted(series):
        cells = _by_hour(series[metric])
        top = max(
            (v for cell in cells.values() for v in cell.values()), default=Decimal(0)
        ) or Decimal(1)
        bars = []
        for index, hour in enumerate(slots):
            cell = cells.get(hour, {})
            for offset, name in ((0.1, "ingested"), (0.5, "reported")):
                value = cell.get(name)
                if not value:
                    continue
                height = float(value / top) * plot_height
                bars.append(
                    Bar(
                        x=round(PAD_LEFT + index * slot + offset * slot, 2),
                        y=round(baseline - height, 2),
                        width=round(bar_width, 2),
                        height=round(height, 2),
                        series=name,
                        label=f"{hour:%Y-%m-%d %H:00} UTC: {name} {_number(value)}",
                    )
                )
        step = max(1, len(slots) // 8)
        ticks = [
            Tick(round(PAD_LEFT + i * slot + slot / 2, 2), f"{hour:%d %H:00}")
            for i, hour in enumerate(slots)
            if i % step == 0
        ]
        charts.append(
            Chart(
                metric=metric,
                width=WIDTH,
                height=HEIGHT,
                bars=bars,
                ticks=ticks,
                max_value=top,
                baseline=baseline,
                ingested_total=sum(
                    (c.get("ingested", Decimal(0)) for c in cells.values()), Decimal(0)
                ),
                reported_total=sum(
                    (c.get("reported", Decimal(0)) for c in cells.values()), Decimal(0)
                ),
            )
        )
    return charts
