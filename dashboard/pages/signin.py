"""Sign-in and sign-out: the bearer token kept in an HttpOnly, SameSite=Strict cookie, and the home redirect."""

# No `from __future__ import annotations`: FastAPI reads the dependencies from the evaluated annotations.


from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from auth.tokens import InvalidCredentials
from dashboard.board import (
    CASE_READERS,
    COOKIE,
    ESCALATION_READERS,
    PREFIX,
    SIGNED_IN_FOR,
    Board,
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
    token = fields.get("token", "").strip()
    try:
        caller = await board.authenticator.authenticate(token)
    except InvalidCredentials:
        return board.page(request, "login.html", None, status=401, next=target, problem="That token was not accepted.")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SIGNED_IN_FOR.total_seconds()),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    log.info("dashboard_signed_in", actor=caller.actor.id)
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


@router.get("/")
async def home(caller: SignedIn) -> Response:
    role = caller.actor.role
    target = "escalations" if role in ESCALATION_READERS else "referrals" if role in CASE_READERS else "actions"
    return RedirectResponse(f"{PREFIX}/{target}", status_code=303)
