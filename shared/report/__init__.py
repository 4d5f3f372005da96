"""The rollout report: per wave, its state timeline, figures over time, per-user MFA and open alerts.

``build_rollout_report`` reads the state tables only (the audit log, the wave records, the daily
snapshots the rollout timer writes, the saved per-user MFA report, the open alerts) and
``render_html`` turns the result into one self-contained page. ``record_daily_snapshots`` is what
the rollout timer calls after each tick to keep the history.
"""

from __future__ import annotations

from shared.report.model import (
    DEFAULT_DAYS,
    MAX_DAYS,
    WAVE_CHARTS,
    Chart,
    Line,
    ReportOptions,
    RolloutReport,
    TimelineEvent,
    WaveSection,
    build_rollout_report,
    options_from_query,
    parse_days,
    report_options,
    stale_after_for,
)
from shared.report.render import CONTENT_SECURITY_POLICY, HTTP_CONTENT_SECURITY_POLICY, render_html
from shared.report.snapshots import (
    DailySnapshot,
    clear_snapshots,
    read_snapshots,
    record_daily_snapshots,
    snapshot_namespace,
    write_daily_snapshots,
)

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "DEFAULT_DAYS",
    "HTTP_CONTENT_SECURITY_POLICY",
    "MAX_DAYS",
    "WAVE_CHARTS",
    "Chart",
    "DailySnapshot",
    "Line",
    "ReportOptions",
    "RolloutReport",
    "TimelineEvent",
    "WaveSection",
    "build_rollout_report",
    "clear_snapshots",
    "options_from_query",
    "parse_days",
    "read_snapshots",
    "record_daily_snapshots",
    "render_html",
    "report_options",
    "snapshot_namespace",
    "stale_after_for",
    "write_daily_snapshots",
]
