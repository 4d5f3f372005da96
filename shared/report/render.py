"""The rollout report as one self-contained HTML page: inline SVG charts, no script, no network.

Charts are drawn server-side by pygal into SVG that scales to the page's width; pygal's own script
(tooltips, loaded from the network) is left out, so the page needs nothing at view time and works
with JavaScript off. Every string that comes from data (wave names and descriptions, reasons,
actors, alert summaries) is escaped here; pygal escapes the text it writes into the SVG. The page
also carries a Content-Security-Policy that allows no script and no fetch at all.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from shared.report.model import STATE_LEVELS, Chart, RolloutReport, TimelineEvent, WaveSection

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

__all__ = ["CONTENT_SECURITY_POLICY", "HTTP_CONTENT_SECURITY_POLICY", "render_html"]

# No script, no connection, no frame; the page's and the charts' inline styles, inline images only.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
)
# The endpoint's header adds what a <meta> policy cannot carry (browsers ignore it there, with a
# console error): no site may frame the report.
HTTP_CONTENT_SECURITY_POLICY: Final = CONTENT_SECURITY_POLICY + "; frame-ancestors 'none'"
_FONT: Final = 'system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", Arial, sans-serif'
_DATA_COLOUR: Final = "#1f5fbf"
_THRESHOLD_COLOUR: Final = "#9a6700"
_WIDTH: Final = 560
_HEIGHT: Final = 320

_CSS: Final = """
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1b1f24;
background:#f6f8fa;overflow-wrap:anywhere}
header,main,footer{max-width:60rem;margin:0 auto;padding:0 1rem}
header{padding-top:1rem}
h1{font-size:1.5rem;margin:.5rem 0}
h2{font-size:1.3rem;margin:0 0 .25rem}
h3{font-size:1.05rem;margin:0 0 .25rem}
.meta{color:#57606a;margin:.25rem 0}
.wave{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:1rem;margin:1rem 0}
.state{display:inline-block;white-space:nowrap;font-size:.8rem;font-weight:600;padding:.1rem .5rem;
border-radius:1rem;
background:#eaeef2;vertical-align:middle}
.state-registering{background:#ddf4ff}.state-report-only{background:#fff8c5}.state-enforced{background:#dafbe1}
.figures{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.5rem;
margin:.75rem 0;padding:0}
.figures div{background:#f6f8fa;border-radius:6px;padding:.4rem .6rem}
.figures dt{font-size:.8rem;color:#57606a}.figures dd{margin:0;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,24rem),1fr));gap:1rem}
figure.chart,.chart-empty{margin:0;min-width:0}
figure.chart svg{display:block;width:100%;height:auto;max-width:100%}
.caption,.empty{color:#57606a;font-size:.9rem;margin:.25rem 0}
details{font-size:.9rem;margin:.25rem 0}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:.9rem}
th{overflow-wrap:normal}
.wave>h3{margin-top:1rem}
th,td{text-align:left;padding:.2rem .5rem;border-bottom:1px solid #eaeef2;vertical-align:top}
td.num,th.num{text-align:right}
ol.events{padding-left:1.2rem;margin:.25rem 0}
ol.events li{margin:.2rem 0}
.sev-critical{color:#cf222e;font-weight:600}
.overview .at{font-size:.8rem;color:#57606a;margin-top:.15rem}
.stale{display:inline-block;font-size:.75rem;font-weight:600;color:#fff;background:#cf222e;
padding:0 .4rem;border-radius:1rem}
.notes{background:#fff8c5;border-radius:6px;padding:.5rem .75rem}
footer{color:#57606a;font-size:.85rem;padding-bottom:2rem}
"""


def render_html(report: RolloutReport) -> str:
    """The report as one HTML document (UTF-8 text)."""
    title = "WaveGuard rollout report" + (f" - {report.tenant}" if report.tenant else "")
    parts = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CONTENT_SECURITY_POLICY)}">',
        '<meta name="robots" content="noindex">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Made {_e(_when(report.generated_at))}; history over the last {report.days} days '
        f"(from {_e(_when(report.window_start))}).</p>",
        *_notes(report.notes),
        _overview(report.waves),
        "</header>",
        "<main>",
        *(_wave(section) for section in report.waves),
        "</main>",
        "<footer>",
        "<p>Where the figures come from: wave states and approvals from the audit log and the wave "
        "records; registration and report-only figures from the daily snapshots the rollout timer "
        "writes (one per wave per UTC day, the day's last evaluation); per-user MFA from the last saved "
        "<code>waveguard permfa report</code>"
        + (f" ({_e(report.per_user_mfa_at)})" if report.per_user_mfa_at else "")
        + "; open alerts as recorded now. This page was made from WaveGuard's state tables alone and "
        "loads nothing when viewed.</p>",
        "</footer>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _notes(notes: Iterable[str]) -> list[str]:
    return [f'<p class="notes">{_e(note)}</p>' for note in notes]


def _anchor(name: str) -> str:
    return "wave-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _overview(waves: Sequence[WaveSection]) -> str:
    rows = []
    for w in waves:
        latest = w.latest
        registered = f"{latest.registered}/{latest.members}" if latest else "-"
        rows.append(
            "<tr>"
            f'<td><a href="#{_e(_anchor(w.name))}">{_e(w.name)}</a></td>'
            f'<td><span class="state state-{_e(w.state)}">{_e(w.state)}</span>{_figures_at(w)}</td>'
            f'<td class="num">{_e(registered)}</td>'
            f'<td class="num">{len(w.open_alerts)}</td>'
            "</tr>"
        )
    return (
        '<div class="scroll"><table class="overview"><thead><tr><th>Wave</th><th>State (figures of)</th>'
        '<th class="num">Registered</th><th class="num">Open alerts</th></tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table></div>"
    )


def _figures_at(section: WaveSection) -> str:
    """When the wave's latest figures were measured (HTML, under its state), flagged when the report
    found them stale; nothing when there are none."""
    if section.latest is None:
        return ""
    at = section.latest.at.astimezone(UTC)
    when = f'<time datetime="{_e(at.isoformat())}">{_e(_when(at))}</time>'
    stale = (
        ' <span class="stale" title="the rollout timer has not written since">stale</span>'
        if section.stale
        else ""
    )
    return f'<div class="at">{when}{stale}</div>'


def _wave(section: WaveSection) -> str:
    latest = section.latest
    figures = [
        ("state", section.state),
        ("since", _when(section.since) if section.since else "-"),
        ("promotion", section.promotion),
        ("figures of", (_when(latest.at) + (" (stale)" if section.stale else "")) if latest else "-"),
        ("members", str(latest.members) if latest else "-"),
        ("registered", _percent(latest.registration_rate) if latest else "-"),
        ("report-only failures", _percent(latest.report_only_failure_rate) if latest else "-"),
        ("open alerts", str(len(section.open_alerts))),
    ]
    if latest is not None and latest.gates_failing:
        figures.append(("gates failing", ", ".join(latest.gates_failing)))
    return "\n".join(
        [
            f'<section class="wave" id="{_e(_anchor(section.name))}">',
            f'<h2>{_e(section.name)} <span class="state state-{_e(section.state)}">{_e(section.state)}'
            "</span></h2>",
            f'<p class="description">{_e(section.description)}</p>' if section.description else "",
            '<dl class="figures">'
            + "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in figures)
            + "</dl>",
            *_notes(section.notes),
            '<div class="charts">',
            *(_chart(chart) for chart in section.charts),
            "</div>",
            "<h3>Timeline</h3>",
            _events(section.events),
            "<h3>Open alerts</h3>",
            _alerts(section),
            "</section>",
        ]
    )


def _chart(chart: Chart) -> str:
    if not chart.has_data:
        return (
            f'<div class="chart-empty" data-chart="{_e(chart.key)}"><h3>{_e(chart.title)}</h3>'
            f'<p class="empty">{_e(chart.empty or "Nothing to draw yet.")}</p></div>'
        )
    return "".join(
        [
            f'<figure class="chart" data-chart="{_e(chart.key)}">',
            f"<figcaption><h3>{_e(chart.title)}</h3></figcaption>",
            _svg(chart),
            f'<p class="caption">{_e(chart.caption)}</p>' if chart.caption else "",
            _figures(chart),
            "</figure>",
        ]
    )


def _figures(chart: Chart) -> str:
    """The chart's numbers as a table (readable without the drawing, and by a screen reader)."""
    if chart.kind == "timeline":
        return ""
    data = [line for line in chart.lines if line.role == "data"]
    head = "".join(f'<th class="num">{_e(line.name)}</th>' for line in data)
    rows = []
    for index, label in enumerate(chart.labels):
        values = [line.values[index] if index < len(line.values) else None for line in data]
        if all(v is None for v in values):
            continue
        cells = "".join(f'<td class="num">{_e(_format(chart.unit, v))}</td>' for v in values)
        rows.append(f"<tr><td>{_e(label)}</td>{cells}</tr>")
    return (
        f'<details><summary>Figures</summary><div class="scroll"><table><thead><tr><th></th>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div></details>"
    )


def _format(unit: str, value: float | None) -> str:
    if value is None:
        return "-"
    if unit == "percent":
        return f"{value:.1%}"
    if unit == "state":
        return STATE_LEVELS[max(0, min(len(STATE_LEVELS) - 1, round(value)))]
    return f"{value:g}"


def _events(events: Sequence[TimelineEvent]) -> str:
    if not events:
        return '<p class="empty">No transition in this window.</p>'
    items = []
    for event in reversed(events):  # newest first (the list counts down)
        if event.kind == "approval":
            what = _e("promotion approved" + (f" (while {event.state})" if event.state else ""))
        elif event.previous:
            what = f"{_e(event.previous)} &rarr; {_e(event.state)}"
        else:
            what = f"entered {_e(event.state)}"
        who = f" by {_e(event.actor)}" if event.actor else ""
        why = f": {_e(event.reason)}" if event.reason else ""
        items.append(
            f"<li><time>{_e(_when(event.at))}</time> {what}{who}{why}{_e(_SOURCES[event.source])}</li>"
        )
    return '<ol class="events" reversed>' + "".join(items) + "</ol>"


_SOURCES: Final = {"audit": "", "snapshot": " (from a daily snapshot)", "state": " (from the wave record)"}


def _alerts(section: WaveSection) -> str:
    if not section.open_alerts:
        return '<p class="empty">No open alert.</p>'
    rows = "".join(
        "<tr>"
        f'<td class="sev-{_e(a.severity)}">{_e(a.severity)}</td>'
        f"<td>{_e(a.summary or a.key)}</td>"
        f"<td>{_e(a.source)}</td>"
        f"<td>{_e(a.opened_at)}</td>"
        "</tr>"
        for a in section.open_alerts
    )
    return (
        '<div class="scroll"><table class="alerts"><thead><tr><th>Severity</th><th>Summary</th>'
        f"<th>Source</th><th>Opened</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _svg(chart: Chart) -> str:
    """The chart drawn by pygal as inline SVG (its script left out)."""
    import pygal

    config = _config(chart)
    drawing: Any
    if chart.kind == "timeline":
        drawing = pygal.DateTimeLine(
            **config,
            x_value_formatter=lambda moment: moment.strftime("%d %b"),
            range=(0, len(STATE_LEVELS) - 1),
            y_labels=list(range(len(STATE_LEVELS))),
            value_formatter=lambda level: _format("state", level),
            show_legend=False,
            dots_size=3,
        )
        points = [
            (datetime.fromisoformat(label), value)
            for label, value in zip(chart.labels, chart.lines[0].values, strict=False)
        ]
        drawing.add("state", points)
    elif chart.kind == "bar":
        drawing = pygal.HorizontalBar(
            **{**config, "height": 60 + 34 * max(1, len(chart.labels))},
            show_legend=False,
            print_values=True,
            value_formatter=lambda value: _format("count", value),
        )
        drawing.x_labels = list(chart.labels)
        for line in chart.lines:
            drawing.add(line.name, list(line.values))
    else:
        percent = chart.unit == "percent"
        top, ticks = _percent_axis(chart) if percent else (0.0, [])
        fine = percent and any(round(t * 100) != round(t * 100, 1) for t in ticks)
        drawing = pygal.Line(
            **config,
            allow_interruptions=True,
            dots_size=3,
            value_formatter=(lambda value: f"{value:.{1 if fine else 0}%}")
            if percent
            else (lambda value: f"{value:g}"),
            **({"range": (0, top), "y_labels": ticks} if percent else {}),
        )
        drawing.x_labels = [_day_label(label) for label in chart.labels]
        for line in chart.lines:
            if line.role == "threshold":
                drawing.add(line.name, list(line.values), show_dots=False, stroke_style={"dasharray": "6,4"})
            else:
                drawing.add(line.name, list(line.values))
    drop_scripts: Callable[[Element], Element] = _without_scripts
    drawing.add_xml_filter(drop_scripts)
    svg: str = drawing.render(is_unicode=True)
    return svg


def _percent_axis(chart: Chart) -> tuple[float, list[float]]:
    """The y axis of a rate: 0 to 100% by quarters, unless every value (and the gate) is small; then
    0 to a little above the largest, in round steps, so a 2% gate and 5% failures are not flat."""
    largest = max((v for line in chart.lines for v in line.values if v is not None), default=1.0)
    if largest > 0.4:
        return 1.0, [0.0, 0.25, 0.5, 0.75, 1.0]
    step = next(s for s in _STEPS if s * 5 >= largest * 1.1)
    count = max(1, math.ceil(largest * 1.1 / step - 1e-9))
    return step * count, [round(step * n, 4) for n in range(count + 1)]


_STEPS: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.025, 0.05, 0.1)


def _day_label(label: str) -> str:
    try:
        return datetime.fromisoformat(label).strftime("%d %b")
    except ValueError:
        return label


def _config(chart: Chart) -> dict[str, Any]:
    from pygal.style import Style

    colours = [_THRESHOLD_COLOUR if line.role == "threshold" else _DATA_COLOUR for line in chart.lines]
    style = Style(
        background="transparent",
        plot_background="transparent",
        foreground="#1b1f24",
        foreground_strong="#1b1f24",
        foreground_subtle="#d0d7de",
        font_family=_FONT,
        label_font_size=15,
        major_label_font_size=15,
        legend_font_size=16,
        value_font_size=14,
        tooltip_font_size=14,
        colors=tuple(colours) or (_DATA_COLOUR,),
    )
    return {
        "style": style,
        "js": [],
        "disable_xml_declaration": True,
        "explicit_size": False,
        "width": _WIDTH,
        "height": _HEIGHT,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 2,
        "truncate_legend": -1,
        "truncate_label": -1,
        "show_minor_x_labels": False,
        "x_labels_major_count": 4,
        "margin": 8,
        "margin_right": 28,
        "no_data_text": "",
    }


def _without_scripts(root: Element) -> Element:
    """Remove every ``script`` element pygal wrote (its config and tooltip loader)."""
    for parent in list(root.iter()):
        for child in list(parent):
            if str(child.tag).rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root
