"""Geometry of the 30-day credits chart, drawn as plain SVG by the template."""

from dataclasses import dataclass

from webapp.domain.reports import DayTotals

WIDTH, HEIGHT = 600, 160
TOP, BOTTOM, LEFT = 10, 20, 4  # room for the max label and the day labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    width: float
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    baseline: float
    peak: int
    bought: list[Bar]
    spent: list[Bar]
    labels: list[tuple[float, str]]  # x, text under some days
    total_bought: int
    total_spent: int


def build(days: list[DayTotals]) -> Chart:
    peak = max([max(d.bought, d.spent) for d in days] + [0])
    plot = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT) / max(len(days), 1)
    bar = max(slot / 2 - 1, 1)
    bought, spent, labels = [], [], []
    for index, day in enumerate(days):
        x = LEFT + index * slot
        for value, bars, offset, verb in (
            (day.bought, bought, 0, "bought"),
            (day.spent, spent, bar, "spent"),
        ):
            height = round(plot * value / peak, 1) if peak else 0
            bars.append(
                Bar(
                    round(x + offset, 1),
                    round(TOP + plot - height, 1),
                    height,
                    round(bar, 1),
                    f"{day.day.isoformat()}: {value:,} {verb}",
                )
            )
        if (len(days) - 1 - index) % 7 == 0:  # weekly, ending on today: labels never collide
            labels.append((round(x, 1), day.day.strftime("%b %d")))
    return Chart(
        WIDTH,
        HEIGHT,
        TOP + plot,
        peak,
        bought,
        spent,
        labels,
        sum(d.bought for d in days),
        sum(d.spent for d in days),
    )
