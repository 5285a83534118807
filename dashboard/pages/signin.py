"""Sign-in and sign-out: a bearer token checked once opens a server-side session, whose ID alone the cookie holds."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.


from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from auth.tokens import InvalidCredentials
from dashboard.board import (
    CASE_READERS,
    COOKIE,
    COOKIE_PATH,
    ESCALATION_READERS,
    PREFIX,
    Board,
    PostedForm,
    SignedIn,
    form_fields,
    log,
    safe_next,
    same_origin,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, board: Board, next: str | None = None) -> Response:
    return board.page(request, "login.html", None, next=safe_next(next))


@router.post("/login")
async def login(request: Request, board: Board) -> Response:
    fields = await form_fields(request)
    target = safe_next(fields.get("next"))
    if not same_origin(request):
        return board.page(request, "login.html", None, status=403, next=target, problem="Sign in from this site.")
    try:
        caller = await board.authenticator.authenticate(fields.get("token", "").strip())
    except InvalidCredentials:
        return board.page(request, "login.html", None, status=401, next=target, problem="That token was not accepted.")
    # A session already held by this browser ends: signing in again never leaves two alive.
    await board.sessions.revoke(request.cookies.get(COOKIE))
    session_id, session = await board.sessions.open(caller)
    response = RedirectResponse(target, status_code=303)
    # The cookie holds the session's random ID, never the token; it ends with the session.
    response.set_cookie(
        COOKIE,
        session_id,
        expires=session.expires_at,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    log.info("dashboard_signed_in", actor=caller.actor.id)
    return response


@router.post("/logout")
async def logout(request: Request, board: Board, caller: SignedIn, form: PostedForm) -> Response:
    """Revoke the session server-side, so a copy of its cookie opens nothing, and forget the cookie."""
    await board.sessions.revoke(request.cookies.get(COOKIE))
    log.info("dashboard_signed_out", actor=caller.actor.id)
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


@router.get("/")
async def home(caller: SignedIn) -> Response:
    role = caller.actor.role
    target = "escalations" if role in ESCALATION_READERS else "referrals" if role in CASE_READERS else "actions"
    return RedirectResponse(f"{PREFIX}/{target}", status_code=303)
