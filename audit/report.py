"""A case's timeline as a self-contained HTML report: the dashboard's layout and style inline, and an inline SVG Gantt
of its steps against their deadlines.

The page is drawn from Jinja templates (audit/templates/timeline.html in the shared layout,
layout/templates): nothing is fetched from anywhere, so the file can be mailed or archived as it
is. It shows references, stages, roles, staff IDs and times only, every time in Europe/London to
the second, every yes or no in words. A step still open runs to the moment the timeline was
measured to (now, for a running case).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from audit.timeline import (
    DeadlineCheck,
    EpisodeTimeline,
    ReferralTimeline,
    SittingTimeline,
    TimelineAction,
    TimelineActor,
    TimelineDecision,
    TimelineEscalation,
    TriageTimeline,
)
from layout import TEMPLATES
from layout.axis import time_ticks
from workflows.facts import Detail
from workflows.models import rung_number

Timeline = ReferralTimeline | EpisodeTimeline | TriageTimeline | SittingTimeline

LONDON = ZoneInfo("Europe/London")
LABEL_WIDTH = 230
CHART_WIDTH = 720
ROW_HEIGHT = 36
BAR_HEIGHT = 14
AXIS_HEIGHT = 40
COLOURS = {"met": "#2e7d32", "missed": "#c62828", "open": "#f9a825", "none": "#78909c"}

# The report's templates, then the layout the dashboard's pages share.
PAGES = Environment(loader=FileSystemLoader([Path(__file__).parent / "templates", TEMPLATES]), autoescape=True,
                    trim_blocks=True, lstrip_blocks=True)


def local(moment: datetime | None) -> str:
    return moment.astimezone(LONDON).strftime("%a %d %b %Y %H:%M:%S") if moment else ""


def span_text(delta: timedelta) -> str:
    seconds = abs(int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} {'day' if days == 1 else 'days'}"] * bool(days) + [f"{hours} h"] * bool(hours) + [
        f"{minutes} min"] * bool(minutes and not days)
    return " ".join(parts) or "under a minute"


def verdict(check_: DeadlineCheck) -> tuple[str, str]:
    """(css class, words) for a deadline check."""
    if check_.deadline is None:
        return "none", "no deadline" if check_.done_at else "open, no deadline"
    margin = span_text(check_.margin) if check_.margin is not None else ""
    if check_.done_at is None:
        return ("missed", f"open, {margin} late") if check_.met is False else ("open", f"open, {margin} left")
    return ("met", f"met, {margin} to spare") if check_.met else ("missed", f"missed, {margin} late")


def who(actor: TimelineActor | None) -> str:
    return f"{actor.id} ({actor.role.value}, {actor.agency.value})" if actor else ""


@dataclass(frozen=True)
class Verdict:
    """A cell saying how a step stood against its deadline, in the dashboard's colours (its class)."""

    style: str
    words: str


# A cell is text, lines of text, or a verdict; the template escapes every word of it.
Cell = str | list[str] | Verdict
# The dashboard's classes for each verdict.
VERDICT_STYLES = {"met": "ok", "missed": "late", "open": "soon", "none": "muted"}


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    empty: str = "None recorded."


def _verdict_cell(check_: DeadlineCheck) -> Verdict:
    css, words = verdict(check_)
    return Verdict(VERDICT_STYLES[css], words)


# --- the Gantt chart -----------------------------------------------------------------------------


class _Scale:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start = start
        self.length = max((end - start).total_seconds(), 60.0)

    def x(self, moment: datetime) -> float:
        return LABEL_WIDTH + CHART_WIDTH * (moment - self.start).total_seconds() / self.length


def _axis(scale: _Scale, end: datetime, height: float) -> list[str]:
    ticks, fmt = time_ticks(scale.start, end)
    parts = []
    for tick in ticks:
        x = scale.x(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{AXIS_HEIGHT - 6}" x2="{x:.1f}" y2="{height}" stroke="#eeeeee"/>')
        parts.append(f'<text class="tick" x="{x:.1f}" y="{AXIS_HEIGHT - 12}" text-anchor="middle">'
                     f'{escape(tick.strftime(fmt))}</text>')
    return parts


def _row(index: int) -> float:
    return AXIS_HEIGHT + index * ROW_HEIGHT


def _bar(scale: _Scale, index: int, row: "GanttRow") -> list[str]:
    y = _row(index)
    css, words = verdict(row.check)
    x0, x1 = scale.x(row.start), scale.x(row.end)
    parts = [
        f'<text x="{LABEL_WIDTH - 8}" y="{y + ROW_HEIGHT / 2 + 4:.1f}" text-anchor="end">{escape(row.label)}</text>',
        f'<rect class="bar {css}" x="{x0:.1f}" y="{y + (ROW_HEIGHT - BAR_HEIGHT) / 2:.1f}" '
        f'width="{max(x1 - x0, 3):.1f}" height="{BAR_HEIGHT}" rx="2" fill="{COLOURS[css]}">'
        f"<title>{escape(row.title)}: {escape(words)}</title></rect>",
    ]
    if row.check.deadline is not None:
        xd = scale.x(row.check.deadline)
        parts.append(
            f'<line class="deadline" x1="{xd:.1f}" y1="{y + 3}" x2="{xd:.1f}" y2="{y + ROW_HEIGHT - 3}" '
            f'stroke="#212121" stroke-width="2"><title>deadline {escape(local(row.check.deadline))}</title></line>'
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
    if shape == "reassigned":  # an orange square below the bar
        return (f'<rect class="reassignment" x="{x - 4:.1f}" y="{y + 8:.1f}" width="8" height="8" fill="#ef6c00">'
                f'<title>{escape(title)}</title></rect>')
    points = f"{x:.1f},{y - 7:.1f} {x + 6:.1f},{y:.1f} {x:.1f},{y + 7:.1f} {x - 6:.1f},{y:.1f}"
    return f'<polygon class="regrade" points="{points}" fill="#6a1b9a"><title>{escape(title)}</title></polygon>'


@dataclass(frozen=True)
class GanttRow:
    """One bar: a step from its start to when it was done (or, open, to the moment measured to)."""

    key: str
    label: str
    start: datetime
    end: datetime
    check: DeadlineCheck
    title: str


def _action_rows(actions: list[TimelineAction], measured_to: datetime) -> list[GanttRow]:
    return [GanttRow(a.action_id, f"{a.action_id.rpartition('.')[2]} {a.agency.value}", a.agreed_at,
                     a.timeliness.done_at or measured_to, a.timeliness, a.action_id) for a in actions]


def _rows(t: Timeline) -> list[GanttRow]:
    """Each case's steps as bars: a referral's stages, an episode's reviews and interview, a triage's referrals;
    then the agreed actions."""
    match t:
        case ReferralTimeline():
            rows = [GanttRow(s.stage.value, s.stage.value.replace("_", " "), s.entered_at, s.left_at or t.measured_to,
                             s.timeliness, s.stage.value) for s in t.stages]
        case EpisodeTimeline():
            rows, since = [], t.reported_at
            for number, review in enumerate(t.reviews, start=1):
                rows.append(GanttRow(f"review {number}", f"review {number}", since, review.done_at or t.measured_to,
                                     review, f"review {number}"))
                since = review.done_at or since
            if t.interview is not None and t.found_at is not None:
                rows.append(GanttRow("interview", "return-home interview", t.found_at,
                                     t.interview.done_at or t.measured_to, t.interview, "return-home interview"))
        case TriageTimeline():
            rows = [GanttRow(i.reference, i.reference, i.listed_at, i.timeliness.done_at or t.measured_to,
                             i.timeliness, f"{i.reference} triaged") for i in t.items]
        case SittingTimeline():
            rows = []  # a sitting's steps against deadlines are its agreed actions
    return rows + _action_rows(getattr(t, "actions", []), t.measured_to)


def _started(t: Timeline) -> datetime:
    match t:
        case ReferralTimeline():
            return t.submitted_at
        case EpisodeTimeline():
            return t.reported_at
        case TriageTimeline():
            return min([i.listed_at for i in t.items], default=t.ends_at)
        case SittingTimeline():
            return min([a.agreed_at for a in t.actions], default=t.held_at or t.ends_at)


def gantt(timeline: Timeline) -> str:
    rows = _rows(timeline)
    start = _started(timeline)
    end = max([timeline.measured_to] + [r.check.deadline for r in rows if r.check.deadline])
    if isinstance(timeline, ReferralTimeline) and timeline.conference and timeline.conference.timeliness.deadline:
        end = max(end, timeline.conference.timeliness.deadline)
    scale = _Scale(start, end + (end - start) * 0.02)
    parts: list[str] = []
    index = {row.key: number for number, row in enumerate(rows)}
    for row in rows:
        parts += _bar(scale, index[row.key], row)
    for action in getattr(timeline, "actions", []):
        parts += [_marker(scale, index[action.action_id], at, "reassigned", f"{action.action_id} reassigned "
                          f"{local(at)}") for at in action.reassigned_at]
    regrades = getattr(timeline, "regrades", [])
    if regrades:
        index["risk"] = len(index)
        y = _row(index["risk"]) + ROW_HEIGHT / 2 + 4
        parts.append(f'<text x="{LABEL_WIDTH - 8}" y="{y:.1f}" text-anchor="end">risk regrades</text>')
        parts += [_marker(scale, index["risk"], r.at, "regrade", f"{r.from_risk.value} to {r.to_risk.value} by {r.actor.id}")
                  for r in regrades]
    for e in timeline.escalations:
        row_index = _escalation_row(e, index, rows)
        if row_index is None:
            continue
        parts.append(_marker(scale, row_index, e.raised_at, "raised", f"{e.escalation_id} to the {e.rank} ({e.reason})"))
        if e.acknowledged_at:
            parts.append(_marker(scale, row_index, e.acknowledged_at, "acknowledged",
                                 f"{e.escalation_id} acknowledged by {e.acknowledged_by}"))
    closed_at = getattr(timeline, "closed_at", None)
    if closed_at:
        x = scale.x(closed_at)
        parts.append(f'<line x1="{x:.1f}" y1="{AXIS_HEIGHT - 6}" x2="{x:.1f}" y2="{_row(len(index))}" stroke="#424242" '
                     f'stroke-dasharray="4 3"><title>closed {escape(local(closed_at))}</title></line>')
    if closed_at is None and timeline.status == "running":
        x = scale.x(timeline.measured_to)
        parts.append(f'<line class="now" x1="{x:.1f}" y1="{AXIS_HEIGHT - 6}" x2="{x:.1f}" y2="{_row(len(index))}" '
                     f'stroke="#0277bd" stroke-dasharray="2 2"><title>measured to {escape(local(timeline.measured_to))}'
                     f'</title></line>')
    height = _row(len(index)) + 10
    width = LABEL_WIDTH + CHART_WIDTH + 40
    return (
        f'<svg id="gantt" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}" role="img" '
        f'aria-label="Steps of {escape(timeline.reference)} against their deadlines">'
        + "".join(_axis(scale, end, height) + parts)
        + "</svg>"
    )


def _escalation_row(e: TimelineEscalation, index: dict[str, int], rows: list[GanttRow]) -> int | None:
    """The row an escalation belongs on: its late step's (a stage, an action, a triaged referral, the latest of an
    episode's reviews); none for a step without a bar (an episode's tracing)."""
    if e.subject in index:
        return index[e.subject]
    same = [index[row.key] for row in rows if row.key.startswith(e.subject) and row.start <= e.raised_at]
    return same[-1] if same else None


# --- the page ------------------------------------------------------------------------------------


def _detail(value: Detail) -> str:
    """A detail as a person reads it: a time (a datetime, or the ISO text a fact keeps) in local time, yes or no."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value and value[:4].isdigit() else value
        except ValueError:
            pass
    if isinstance(value, datetime) and value.tzinfo is not None:
        return local(value)
    return yes_no(value) if isinstance(value, bool) else str(value)


def yes_no(value: bool | None) -> str:
    """A yes-or-no fact as a reader says it, never Python's True or False."""
    return "" if value is None else ("yes" if value else "no")


def _summary(t: ReferralTimeline) -> Table:
    return Table(
        ["reference", "status", "incident", "risk", "submitted", "closed", "reason"],
        [[t.reference, t.status, t.incident_type.value,
          f"{t.initial_risk.value} to {t.final_risk.value}" if t.initial_risk != t.final_risk else t.final_risk.value,
          local(t.submitted_at), local(t.closed_at), t.close_reason.value if t.close_reason else ""]],
    )


def _stages(t: ReferralTimeline) -> Table:
    return Table(
        ["stage", "entered", "by", "left", "by", "deadline", "deadline changes", "timeliness"],
        [[s.stage.value, local(s.entered_at), who(s.entered_by), local(s.left_at), who(s.left_by),
          local(s.timeliness.deadline), [f"{c.cause}: {local(c.deadline) or 'none'}" for c in s.deadline_changes],
          _verdict_cell(s.timeliness)] for s in t.stages],
    )


def _decisions(t: Timeline) -> Table:
    def where(d: TimelineDecision) -> str:
        return f"{d.label} ({d.stream.rpartition('.')[2] if d.stream != t.reference else 'case'} #{d.seq})"

    return Table(
        ["when", "who", "what", "update", "stage", "risk", "details"],
        [[local(d.at), who(d.actor), where(d), d.update or "", d.stage.value if d.stage else "",
          d.risk.value if d.risk else "", [f"{k}: {_detail(v)}" for k, v in d.details.items() if v is not None]]
         for d in t.decisions],
    )


def _regrades(t: ReferralTimeline) -> Table:
    return Table(
        ["when", "who", "from", "to", "deadline after"],
        [[local(r.at), who(r.actor), r.from_risk.value, r.to_risk.value, local(r.deadline)] for r in t.regrades],
    )


def _meetings(t: ReferralTimeline) -> Table:
    return Table(
        ["held", "recorded", "by", "section 47", "quorate", "attendees (agency, role)"],
        [[local(m.held_at), local(m.recorded_at), who(m.recorded_by), yes_no(m.section_47),
          Verdict("ok" if m.quorate else "late", yes_no(m.quorate)), [f"{a.agency.value}, {a.role}" for a in m.attendees]]
         for m in t.meetings],
    )


def _actions(t: ReferralTimeline | EpisodeTimeline) -> Table:
    return Table(
        ["action", "agency", "agreed", "by", "deadline", "completed", "by", "reminded", "reassigned", "timeliness"],
        [[a.action_id, a.agency.value, local(a.agreed_at), who(a.agreed_by), local(a.timeliness.deadline),
          local(a.timeliness.done_at), a.completed_by or "", local(a.reminded_at),
          [local(at) for at in a.reassigned_at] or "no", _verdict_cell(a.timeliness)] for a in t.actions],
    )


def _escalations(t: Timeline) -> Table:
    return Table(
        ["escalation", "late step", "rung", "rank", "reason", "due", "raised", "acknowledged", "by", "after"],
        [[e.escalation_id, e.subject, str(rung_number(e.rung)), e.rank, e.reason, local(e.due_at), local(e.raised_at),
          local(e.acknowledged_at), e.acknowledged_by or "",
          span_text(e.acknowledged_after) if e.acknowledged_after is not None else "not acknowledged"]
         for e in t.escalations],
    )


def _conference(t: ReferralTimeline) -> Table:
    c = t.conference
    headers = ["due by", "booked", "conference", "police", "late reason", "held", "child protection plan", "timeliness"]
    if c is None:
        return Table(headers, [], empty="No section 47 enquiries: no conference.")
    return Table(headers, [[
        local(c.timeliness.deadline), local(c.booked_at), local(c.conference_at),
        c.police_attendance.value if c.police_attendance else "", yes_no(c.late_reason_given), local(c.held_at),
        yes_no(c.child_protection_plan), _verdict_cell(c.timeliness)]])


def _checks(headers: list[str], checks: list[tuple[list[str], DeadlineCheck]]) -> Table:
    return Table(headers + ["due", "done", "timeliness"],
                 [[*cells, local(check_.deadline), local(check_.done_at), _verdict_cell(check_)]
                  for cells, check_ in checks])


def _referral_sections(t: ReferralTimeline) -> list[tuple[str, Table]]:
    return [("Stages", _stages(t)), ("Decisions", _decisions(t)), ("Risk regrades", _regrades(t)),
            ("Strategy discussions", _meetings(t)), ("Agreed actions", _actions(t)), ("Escalations", _escalations(t)),
            ("Initial child protection conference", _conference(t))]


def _episode_sections(t: EpisodeTimeline) -> list[tuple[str, Table]]:
    summary = Table(["episode", "status", "grade", "reported", "missing since", "found", "closed"],
                    [[t.reference, t.status, f"{t.assessed_grade.value} to {t.final_grade.value}", local(t.reported_at),
                      local(t.missing_since), local(t.found_at), local(t.closed_at)]])
    reviews = _checks(["review"], [([str(n)], c) for n, c in enumerate(t.reviews, start=1)])
    interview = _checks(["interview"], [(["return-home interview"], t.interview)] if t.interview else [])
    return [("Summary", summary), ("Reviews", reviews), ("Return-home interview", interview),
            ("Decisions", _decisions(t)), ("Agreed actions", _actions(t)), ("Escalations", _escalations(t))]


def _triage_sections(t: TriageTimeline) -> list[tuple[str, Table]]:
    items = _checks(["referral", "risk", "prior referrals", "listed", "outcome", "by"],
                    [([i.reference, i.risk.value, str(i.prior_referrals), local(i.listed_at),
                       i.outcome.value if i.outcome else "", i.decided_by or ""], i.timeliness) for i in t.items])
    return [("Referrals on the list", items), ("Decisions", _decisions(t)), ("Escalations", _escalations(t))]


def _sitting_sections(t: SittingTimeline) -> list[tuple[str, Table]]:
    cases = Table(["case", "listed for", "grade", "live case", "absent", "actions", "carried"],
                  [[c.case_id, ", ".join(r.value for r in c.reasons), c.grade.value if c.grade else "",
                    c.grade_applied or "", ", ".join(r.value for r in c.absent_roles), str(len(c.actions)),
                    "carried" if c.not_reached else ""] for c in t.cases])
    return [("Cases on the agenda", cases), ("Decisions", _decisions(t)), ("Escalations", _escalations(t))]


def render_timeline_html(timeline: Timeline) -> str:
    t = timeline
    summary: Table | None = None
    match t:
        case ReferralTimeline():
            noun, summary, sections = "referral", _summary(t), _referral_sections(t)
        case EpisodeTimeline():
            noun, sections = "missing episode", _episode_sections(t)
        case TriageTimeline():
            noun, sections = f"daily triage of {t.day.isoformat()}", _triage_sections(t)
        case SittingTimeline():
            noun, sections = f"panel sitting of {t.day.isoformat()}", _sitting_sections(t)
    return PAGES.get_template("timeline.html").render(
        t=t, noun=noun, summary=summary, sections=sections, gantt=Markup(gantt(t)), colours=COLOURS,
        measured_to=local(t.measured_to), running=t.status == "running",
    )
