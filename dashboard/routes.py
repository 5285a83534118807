"""The dashboard's pages under /dashboard, one router per page, mounted by the app that serves them.

Server-rendered pages of open alerts, late actions, stages, the triage queue, panels and timeliness, and the forms
that open cases and take decisions as the API does (pages/intake.py, pages/decisions.py). `mount(app, board)`
serves them from an app (the API's, `api.app`) around a board (`dashboard.board.create_board`)
holding its Temporal client and PostgreSQL pool. Sign-in checks the same bearer token as the API
once and opens a server-side session (auth/sessions.py) whose random ID alone the HttpOnly,
SameSite=Strict cookie holds; signing out revokes it. Every form post must come from this site and
carry its session's CSRF token; roles are the API's: supervisors see the
escalations addressed to their team or agency and acknowledge those of their rank or below (or
addressed to them by name), administrators read and acknowledge everything, auditors read
everything, partners see their own agency's agreed actions only. A supervisor grants or refuses a
repeat-referral override the screener asked for on the referral's page. A page showing a
referral's details writes an access-log entry. No page shows a child's name, date of birth or
address, nor a decision's free text, but the VIST form to the officer filling it in (and a returned VIST's
reasons to its officer), and a partner agency's referral form (a partner of health, education or children's social
care refers a child to screening) to the partner filling it in.
"""

from fastapi import APIRouter, FastAPI

from dashboard.board import COOKIE, PREFIX, Dashboard, FormRefused, form_refused, unavailable_page
from dashboard.pages import (
    actions,
    decisions,
    escalations,
    intake,
    missing,
    panels,
    plans,
    referrals,
    signin,
    timeliness,
    triage,
)

__all__ = ["COOKIE", "PAGES", "PREFIX", "mount", "router", "unavailable_page"]

# Each page's module, with its own router.
PAGES = (signin, intake, escalations, actions, decisions, referrals, triage, missing, plans, panels, timeliness)
router = APIRouter()
for page in PAGES:
    router.include_router(page.router)


def mount(app: FastAPI, board: Dashboard) -> None:
    """Serve the pages from `app`, drawing on `board` (`dashboard.board.create_board`)."""
    app.state.dashboard = board
    app.include_router(router)
    app.add_exception_handler(FormRefused, form_refused)
