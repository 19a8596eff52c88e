"""Inline SVG charts computed in Python (pure: data in, markup out).

Every text that reaches the SVG goes through :func:`markupsafe.escape`; numbers are
formatted by us. The result is :class:`markupsafe.Markup` so templates can place it
without re-escaping, and nothing in it points anywhere (no ``href``, no ``url()``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

from bundler.display_text import STATUS_LABELS, reveal_invisible
from bundler.model import NOT_ASSESSED, NOT_SATISFIED, SATISFIED, ControlResult, DailyVolume, SourceFreshness

STATUS_COLOURS = {SATISFIED: "#2e7d32", NOT_SATISFIED: "#c62828", NOT_ASSESSED: "#9e9e9e"}
SOURCE_COLOURS = ["#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037", "#ad1457"]
FONT = 'font-family="DejaVu Sans, sans-serif"'


def _text(x: float, y: float, value: object, *, size: int = 10, anchor: str = "start", fill: str = "#222") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" {FONT}>'
            f"{escape(reveal_invisible(str(value)))}</text>")


def _svg(width: int, height: int, body: list[str], title: str) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(reveal_invisible(title))}">'
        + "".join(body) + "</svg>"
    )


def status_by_family(controls: Sequence[ControlResult], *, width: int = 640) -> Markup:
    """Stacked horizontal bars: per control family, how many controls have each status."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {SATISFIED: 0, NOT_SATISFIED: 0, NOT_ASSESSED: 0})
    for control in controls:
        counts[control.family or "?"][control.status] += 1
    families = sorted(counts)
    row, left, top = 20, 60, 24
    most = max((sum(c.values()) for c in counts.values()), default=1) or 1
    scale = (width - left - 40) / most
    height = top + row * max(len(families), 1) + 10
    body = []
    x: float = left
    for status in (SATISFIED, NOT_SATISFIED, NOT_ASSESSED):  # the legend words the statuses as the tables do
        body.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{STATUS_COLOURS[status]}"/>')
        body.append(_text(x + 14, 13, STATUS_LABELS[status], size=9))
        x += 14 + 6 * len(STATUS_LABELS[status]) + 16
    for i, family in enumerate(families):
        y = top + i * row
        body.append(_text(left - 6, y + 13, family, anchor="end"))
        x = left
        for status in (SATISFIED, NOT_SATISFIED, NOT_ASSESSED):
            n = counts[family][status]
            if n:
                w = n * scale
                body.append(f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" '
                            f'fill="{STATUS_COLOURS[status]}"/>')
                if w > 14:
                    body.append(_text(x + w / 2, y + 13, n, size=9, anchor="middle", fill="#fff"))
                x += w
    return _svg(width, height, body, "Control status by family")


def volume_by_source(volume: Sequence[DailyVolume], *, width: int = 640, height: int = 220) -> Markup:
    """One line per source: entries per day over the period."""
    days = sorted({v.day for v in volume})
    sources = sorted({v.source for v in volume})
    if not days:
        return _svg(width, 40, [_text(10, 24, "no evidence in the period")], "Evidence volume per source per day")
    per: dict[tuple[str, str], int] = defaultdict(int)
    for v in volume:
        per[(v.source, v.day)] += v.entries
    peak = max(per.values()) or 1
    left, right, top, bottom = 56, 12, 26, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(days) - 1, 1)
    body = [f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#999"/>',
            _text(left - 4, top + 4, f"{peak:,}", size=8, anchor="end"),
            _text(left - 4, top + plot_h, "0", size=8, anchor="end")]
    shown_year = ""
    for i, day in enumerate(days):
        if len(days) <= 10 or i % max(len(days) // 8, 1) == 0 or i == len(days) - 1:
            # the year on the first tick and wherever it changes; month-day elsewhere (UTC days)
            label = day if day[:4] != shown_year else day[5:]
            shown_year = day[:4]
            body.append(_text(left + i * step, top + plot_h + 14, label, size=8, anchor="middle"))
    for k, source in enumerate(sources):
        colour = SOURCE_COLOURS[k % len(SOURCE_COLOURS)]
        points = " ".join(f"{left + i * step:.1f},{top + plot_h - per[(source, d)] / peak * plot_h:.1f}"
                          for i, d in enumerate(days))
        if len(days) == 1:
            x, y = points.split(",")
            body.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>')
        else:
            body.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        body.append(f'<rect x="{left + k * 110}" y="6" width="10" height="10" fill="{colour}"/>')
        body.append(_text(left + k * 110 + 14, 15, source, size=9))
    return _svg(width, height, body, "Evidence volume per source per day")


def _age_hours(newest: str | None, as_of: str) -> float | None:
    if newest is None:
        return None
    try:
        a = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
        n = datetime.fromisoformat(newest.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max((a - n).total_seconds() / 3600, 0.0)


def freshness(sources: Sequence[SourceFreshness], as_of: str, *, width: int = 640) -> Markup:
    """Age of each source's newest evidence at ``as_of`` against its cadence (the tick)."""
    if not sources:
        return _svg(width, 40, [_text(10, 24, "no sources")], "Freshness per source")
    row, left, top = 22, 110, 40
    ages = [(_age_hours(s.newest, as_of), s.cadence_seconds / 3600, s) for s in sources]
    longest = max([a for a, _, _ in ages if a is not None] + [c for _, c, _ in ages] + [1.0])
    scale = (width - left - 150) / longest
    # The legend says what the bar and the dashed tick are: a reader of the printed page has no tooltip.
    body = [f'<rect x="{left}" y="6" width="10" height="10" fill="{STATUS_COLOURS[SATISFIED]}"/>',
            _text(left + 14, 15, "age of the newest evidence at the as-of time (red: stale)", size=9),
            f'<line x1="{left + 5}" y1="21" x2="{left + 5}" y2="33" stroke="#333" stroke-dasharray="2,2"/>',
            _text(left + 14, 31, "cadence: new evidence expected at least this often; older is stale", size=9)]
    height = top + row * len(sources) + 8
    for i, (age, cadence, src) in enumerate(ages):
        y = top + i * row
        body.append(_text(left - 6, y + 13, src.source, anchor="end"))
        if age is None:
            body.append(_text(left, y + 13, "no evidence: stale", fill=STATUS_COLOURS[NOT_SATISFIED]))
        else:
            colour = STATUS_COLOURS[NOT_SATISFIED] if src.stale else STATUS_COLOURS[SATISFIED]
            body.append(f'<rect x="{left}" y="{y + 3}" width="{max(age * scale, 1):.1f}" height="{row - 8}" fill="{colour}"/>')
            label = f"{age:.1f} h old" + (" (stale)" if src.stale else "")
            body.append(_text(left + max(age * scale, 1) + 4, y + 13, label, size=9))
        cx = left + cadence * scale
        body.append(f'<line x1="{cx:.1f}" y1="{y}" x2="{cx:.1f}" y2="{y + row - 2}" stroke="#333" stroke-dasharray="2,2"/>')
    return _svg(width, height, body, "Freshness per source (dashed: cadence)")
