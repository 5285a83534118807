"""The timeline as a self-contained HTML report: inline CSS and an inline SVG Gantt of the stages against their deadlines.

Nothing is fetched from anywhere, so the file can be mailed or archived as it is; it shows
references, stages, roles, staff IDs and times only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

from audit.timeline import DeadlineCheck, ReferralTimeline, TimelineActor, TimelineDecision
from workflows.facts import Detail

LONDON = ZoneInfo("Europe/London")
LABEL_WIDTH = 230
CHART_WIDTH = 720
ROW_HEIGHT = 36
BAR_HEIGHT = 14
AXIS_HEIGHT = 40
COLOURS = {"met": "#2e7d32", "missed": "#c62828", "open": "#f9a825", "none": "#78909c"}
TICK_STEPS = [
    timedelta(minutes=15), timedelta(hours=1), timedelta(hours=3), timedelta(hours=6), timedelta(hours=12),
    timedelta(days=1), timedelta(days=2), timedelta(days=7), timedelta(days=14), timedelta(days=28),
    timedelta(days=91), timedelta(days=365),
]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem; color: #212121; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.muted { color: #616161; font-size: .9rem; }
table { border-collapse: collapse; margin-top: .5rem; font-size: .85rem; }
th, td { border: 1px solid #e0e0e0; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
.met { color: #2e7d32; font-weight: 600; } .missed { color: #c62828; font-weight: 600; } .open { color: #ef6c00; }
.legend span { display: inline-block; margin-right: 1rem; font-size: .85rem; }
.legend i { display: inline-block; width: .9rem; height: .9rem; vertical-align: middle; margin-right: .3rem; }
svg text { font-family: system-ui, sans-serif; font-size: 11px; fill: #212121; }
"""


def local(moment: datetime | None) -> str:
    return moment.astimezone(LONDON).strftime("%a %d %b %Y %H:%M") if moment else ""


def span_text(delta: timedelta) -> str:
    seconds = abs(int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours) + [f"{minutes} min"] * bool(minutes and not days)
    return " ".join(parts) or "under a minute"


def verdict(check_: DeadlineCheck) -> tuple[str, str]:
    """(css class, words) for a deadline check."""
    if check_.deadline is None:
        return "none", "no deadline"
    if check_.met is None:
        return "open", "open"
    margin = span_text(check_.margin) if check_.margin is not None else ""
    return ("met", f"met, {margin} to spare") if check_.met else ("missed", f"missed, {margin} late")


def who(actor: TimelineActor | None) -> str:
    return f"{actor.id} ({actor.role.value}, {actor.agency.value})" if actor else ""


def _table(headers: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return '<p class="muted">None recorded.</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verdict_cell(check_: DeadlineCheck) -> str:
    css, words = verdict(check_)
    return f'<span class="{css}">{escape(words)}</span>'


# --- the Gantt chart -----------------------------------------------------------------------------


class _Scale:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start = start
        self.length = max((end - start).total_seconds(), 60.0)

    def x(self, moment: datetime) -> float:
        return LABEL_WIDTH + CHART_WIDTH * (moment - self.start).total_seconds() / self.length


def _axis(scale: _Scale, end: datetime, height: float) -> list[str]:
    span = timedelta(seconds=scale.length)
    step = next((s for s in TICK_STEPS if span / s <= 8), TICK_STEPS[-1])
    start_local = scale.start.astimezone(LONDON)
    # Ticks on whole local hours (or days), so the labels read naturally.
    tick = start_local.replace(minute=0, second=0, microsecond=0)
    if step >= timedelta(days=1):
        tick = tick.replace(hour=0)
    parts = []
    while tick <= end:
        if tick >= start_local:
            x = scale.x(tick)
            label = tick.strftime("%d %b") if step >= timedelta(days=1) else tick.strftime("%d %b %H:%M")
            parts.append(f'<line x1="{x:.1f}" y1="{AXIS_HEIGHT - 6}" x2="{x:.1f}" y2="{height}" stroke="#eeeeee"/>')
            parts.append(f'<text x="{x:.1f}" y="{AXIS_HEIGHT - 12}" text-anchor="middle">{escape(label)}</text>')
        tick = (tick + step).astimezone(LONDON)
    return parts


def _row(index: int) -> float:
    return AXIS_HEIGHT + index * ROW_HEIGHT


def _bar(scale: _Scale, index: int, label: str, start: datetime, end: datetime, check_: DeadlineCheck, title: str) -> list[str]:
    y = _row(index)
    css, words = verdict(check_)
    x0, x1 = scale.x(start), scale.x(end)
    parts = [
        f'<text x="{LABEL_WIDTH - 8}" y="{y + ROW_HEIGHT / 2 + 4:.1f}" text-anchor="end">{escape(label)}</text>',
        f'<rect class="bar {css}" x="{x0:.1f}" y="{y + (ROW_HEIGHT - BAR_HEIGHT) / 2:.1f}" '
        f'width="{max(x1 - x0, 3):.1f}" height="{BAR_HEIGHT}" rx="2" fill="{COLOURS[css]}">'
        f"<title>{escape(title)}: {escape(words)}</title></rect>",
    ]
    if check_.deadline is not None:
        xd = scale.x(check_.deadline)
        parts.append(
            f'<line class="deadline" x1="{xd:.1f}" y1="{y + 3}" x2="{xd:.1f}" y2="{y + ROW_HEIGHT - 3}" '
            f'stroke="#212121" stroke-width="2"><title>deadline {escape(local(check_.deadline))}</title></line>'
        )
    return parts


def _marker(scale: _Scale, index: int, moment: datetime, shape: str, title: str) -> str:
    x, y = scale.x(moment), _row(index) + ROW_HEIGHT / 2
    if shape == "raised":  # a red triangle above the bar, pointing at the moment
        points = f"{x:.1f},{y - 8:.1f} {x - 5:.1f},{y - 16:.1f} {x + 5:.1f},{y - 16:.1f}"
        return f'<polygon class="escalation" points="{points}" fill="#b71c1c"><title>{escape(title)}</title></polygon>'
    if shape == "acknowledged":
        return (f'<circle class="acknowledgement" cx="{x:.1f}" cy="{y + 12:.1f}" r="4" fill="white" stroke="#1565c0" '
                f'stroke-width="2"><title>{escape(title)}</title></circle>')
    points = f"{x:.1f},{y - 7:.1f} {x + 6:.1f},{y:.1f} {x:.1f},{y + 7:.1f} {x - 6:.1f},{y:.1f}"
    return f'<polygon class="regrade" points="{points}" fill="#6a1b9a"><title>{escape(title)}</title></polygon>'


def gantt(timeline: ReferralTimeline) -> str:
    moments = [timeline.ends_at] + [
        c.deadline for c in [s.timeliness for s in timeline.stages] + [a.timeliness for a in timeline.actions] if c.deadline
    ]
    if timeline.conference and timeline.conference.timeliness.deadline:
        moments.append(timeline.conference.timeliness.deadline)
    end = max(moments)
    scale = _Scale(timeline.submitted_at, end + (end - timeline.submitted_at) * 0.02)
    parts: list[str] = []
    rows: dict[str, int] = {}
    for span in timeline.stages:
        rows[span.stage.value] = len(rows)
        parts += _bar(scale, rows[span.stage.value], span.stage.value.replace("_", " "), span.entered_at,
                      span.left_at or timeline.ends_at, span.timeliness, span.stage.value)
    for action in timeline.actions:
        rows[action.action_id] = len(rows)
        parts += _bar(scale, rows[action.action_id], f"{action.action_id.rpartition('.')[2]} {action.agency.value}",
                      action.agreed_at, action.timeliness.done_at or timeline.ends_at, action.timeliness, action.action_id)
    if timeline.regrades:
        rows["risk"] = len(rows)
        y = _row(rows["risk"]) + ROW_HEIGHT / 2 + 4
        parts.append(f'<text x="{LABEL_WIDTH - 8}" y="{y:.1f}" text-anchor="end">risk regrades</text>')
        parts += [_marker(scale, rows["risk"], r.at, "regrade", f"{r.from_risk.value} to {r.to_risk.value} by {r.actor.id}")
                  for r in timeline.regrades]
    for e in timeline.escalations:
        index = rows.get(e.subject)
        if index is None:
            continue
        parts.append(_marker(scale, index, e.raised_at, "raised", f"{e.escalation_id} to the {e.rank} ({e.reason})"))
        if e.acknowledged_at:
            parts.append(_marker(scale, index, e.acknowledged_at, "acknowledged", f"{e.escalation_id} acknowledged by {e.acknowledged_by}"))
    if timeline.closed_at:
        x = scale.x(timeline.closed_at)
        parts.append(f'<line x1="{x:.1f}" y1="{AXIS_HEIGHT - 6}" x2="{x:.1f}" y2="{_row(len(rows))}" stroke="#424242" '
                     f'stroke-dasharray="4 3"><title>closed {escape(local(timeline.closed_at))}</title></line>')
    height = _row(len(rows)) + 10
    width = LABEL_WIDTH + CHART_WIDTH + 40
    return (
        f'<svg id="gantt" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}" role="img" '
        f'aria-label="Stages and agreed actions of {escape(timeline.reference)} against their deadlines">'
        + "".join(_axis(scale, end, height) + parts)
        + "</svg>"
    )


# --- the page ------------------------------------------------------------------------------------


LEGEND = "".join(
    f'<span><i style="background:{COLOURS[k]}"></i>{label}</span>'
    for k, label in (("met", "done within its deadline"), ("missed", "deadline missed"),
                     ("open", "open"), ("none", "no deadline"))
) + '<span>&#9646; deadline</span><span style="color:#b71c1c">&#9660; escalation</span>' \
    '<span style="color:#1565c0">&#9675; acknowledged</span><span style="color:#6a1b9a">&#9670; risk regrade</span>'


def _detail(value: Detail) -> str:
    return local(value) if isinstance(value, datetime) else str(value)


def _summary(t: ReferralTimeline) -> str:
    return _table(
        ["reference", "status", "incident", "risk", "submitted", "closed", "reason"],
        [[escape(t.reference), escape(t.status), escape(t.incident_type.value),
          escape(f"{t.initial_risk.value} to {t.final_risk.value}" if t.initial_risk != t.final_risk else t.final_risk.value),
          escape(local(t.submitted_at)), escape(local(t.closed_at)), escape(t.close_reason.value if t.close_reason else "")]],
    )


def _stages(t: ReferralTimeline) -> str:
    return _table(
        ["stage", "entered", "by", "left", "by", "deadline", "deadline changes", "timeliness"],
        [[escape(s.stage.value), escape(local(s.entered_at)), escape(who(s.entered_by)), escape(local(s.left_at)),
          escape(who(s.left_by)), escape(local(s.timeliness.deadline)),
          "<br>".join(escape(f"{c.cause}: {local(c.deadline) or 'none'}") for c in s.deadline_changes),
          _verdict_cell(s.timeliness)] for s in t.stages],
    )


def _decisions(t: ReferralTimeline) -> str:
    def where(d: TimelineDecision) -> str:
        return f"{d.label} ({d.stream.rpartition('.')[2] if d.stream != t.reference else 'referral'} #{d.seq})"

    return _table(
        ["when", "who", "what", "update", "stage", "risk", "details"],
        [[escape(local(d.at)), escape(who(d.actor)), escape(where(d)),
          escape(d.update or ""), escape(d.stage.value if d.stage else ""), escape(d.risk.value if d.risk else ""),
          "<br>".join(escape(f"{k}: {_detail(v)}") for k, v in d.details.items() if v is not None)] for d in t.decisions],
    )


def _regrades(t: ReferralTimeline) -> str:
    return _table(
        ["when", "who", "from", "to", "deadline after"],
        [[escape(local(r.at)), escape(who(r.actor)), escape(r.from_risk.value), escape(r.to_risk.value),
          escape(local(r.deadline))] for r in t.regrades],
    )


def _meetings(t: ReferralTimeline) -> str:
    return _table(
        ["held", "recorded", "by", "section 47", "quorate", "attendees (agency, role)"],
        [[escape(local(m.held_at)), escape(local(m.recorded_at)), escape(who(m.recorded_by)), escape(str(m.section_47)),
          f'<span class="{"met" if m.quorate else "missed"}">{m.quorate}</span>',
          "<br>".join(escape(f"{a.agency.value}, {a.role}") for a in m.attendees)] for m in t.meetings],
    )


def _actions(t: ReferralTimeline) -> str:
    return _table(
        ["action", "agency", "agreed", "by", "deadline", "completed", "by", "reminded", "reassigned", "timeliness"],
        [[escape(a.action_id), escape(a.agency.value), escape(local(a.agreed_at)), escape(who(a.agreed_by)),
          escape(local(a.timeliness.deadline)), escape(local(a.timeliness.done_at)), escape(a.completed_by or ""),
          escape(local(a.reminded_at)), str(a.reassignments), _verdict_cell(a.timeliness)] for a in t.actions],
    )


def _escalations(t: ReferralTimeline) -> str:
    return _table(
        ["escalation", "late step", "rung", "rank", "reason", "due", "raised", "acknowledged", "by", "after"],
        [[escape(e.escalation_id), escape(e.subject), str(e.rung), escape(e.rank), escape(e.reason), escape(local(e.due_at)),
          escape(local(e.raised_at)), escape(local(e.acknowledged_at)), escape(e.acknowledged_by or ""),
          escape(span_text(e.acknowledged_after) if e.acknowledged_after is not None else "not acknowledged")]
         for e in t.escalations],
    )


def _conference(t: ReferralTimeline) -> str:
    c = t.conference
    if c is None:
        return '<p class="muted">No section 47 enquiries: no conference.</p>'
    return _table(
        ["due by", "booked", "conference", "police", "late reason", "held", "child protection plan", "timeliness"],
        [[escape(local(c.timeliness.deadline)), escape(local(c.booked_at)), escape(local(c.conference_at)),
          escape(c.police_attendance.value if c.police_attendance else ""), escape(str(c.late_reason_given)),
          escape(local(c.held_at)), escape("" if c.child_protection_plan is None else str(c.child_protection_plan)),
          _verdict_cell(c.timeliness)]],
    )


def render_timeline_html(timeline: ReferralTimeline) -> str:
    t = timeline
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Decision timeline {escape(t.reference)}</title>
<style>{CSS}</style></head>
<body>
<h1>Decision timeline: {escape(t.reference)}</h1>
<p class="muted">Reconstructed from the referral's workflow history and its agreed actions' histories (run {escape(t.run_id)}).
Times are Europe/London. People appear by staff ID, role and agency only.</p>
{_summary(t)}
<h2>Stages against their deadlines</h2>
<div class="legend">{LEGEND}</div>
{gantt(t)}
{_stages(t)}
<h2>Decisions</h2>
{_decisions(t)}
<h2>Risk regrades</h2>
{_regrades(t)}
<h2>Strategy discussions</h2>
{_meetings(t)}
<h2>Agreed actions</h2>
{_actions(t)}
<h2>Escalations</h2>
{_escalations(t)}
<h2>Initial child protection conference</h2>
{_conference(t)}
</body></html>
"""
