"""The UI's router: the front door, logging in and out, API tokens, and the channel pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from taipan.domain.permissions import offered_scopes
from taipan.errors import NotFound, TaipanError
from taipan.services import accounts
from taipan.services import tokens as token_service
from taipan.web.deps import RuntimeDep, SessionDep
from taipan.web.ui import channels
from taipan.web.ui.render import UIRoute, redirect, render
from taipan.web.ui.session import COOKIE_PATH, SESSION_COOKIE, CsrfDep, MemberDep, VisitorDep

router = APIRouter(route_class=UIRoute, include_in_schema=False)


def _safe_next(target: str) -> str:
    """Only our own pages: a crafted ?next= must not turn the login form into an open redirect."""
    if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/channels"


@router.get("/")
@router.get("/ui")
@router.get("/ui/")
def front_door() -> RedirectResponse:
    return RedirectResponse("/ui/channels", status_code=302)


@router.get("/ui/login")
def login_form(request: Request, _: VisitorDep, next: str = "/ui/channels") -> HTMLResponse:
    return render(request, "login.html", next=_safe_next(next), username="")


@router.post("/ui/login")
def login(request: Request, _: CsrfDep, db: SessionDep, rt: RuntimeDep, username: str = Form(""),
          password: str = Form(""), next: str = Form("/ui/channels")) -> Response:
    try:
        secret, user = accounts.login(db, username.strip()[:200], password[:1000], rt.settings.auth,
                                      request.client.host if request.client else None)
    except TaipanError as exc:
        # The login form again, with the reason (and the throttling hint) and the name kept.
        response = render(request, "login.html", status=exc.status, error=exc, next=_safe_next(next),
                          username=username)
        if retry := getattr(exc, "retry_after", None):
            response.headers["Retry-After"] = str(retry)
        return response
    db.commit()
    response = redirect(request, _safe_next(next), f"Logged in as {user.username}")
    response.set_cookie(SESSION_COOKIE, secret, max_age=rt.settings.auth.session_hours * 3600,
                        path=COOKIE_PATH, httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return response


@router.post("/ui/logout")
def logout(request: Request, _: CsrfDep, p: VisitorDep, db: SessionDep) -> Response:
    if p.authenticated:
        token_service.end_session(db, p)
        db.commit()
    request.state.drop_session = True
    return redirect(request, "/ui/login", "Logged out")


def _tokens_page(request: Request, p: MemberDep, db: SessionDep, rt: RuntimeDep, status: int = 200,
                 **extra: object) -> HTMLResponse:
    today = datetime.now(UTC).date()
    return render(request, "tokens.html", status=status, tokens=token_service.list_tokens(db, p),
                  scopes=offered_scopes(p),
                  default_expiry=(today + timedelta(days=30)).isoformat(), min_expiry=today.isoformat(),
                  max_expiry=(today + timedelta(days=rt.settings.auth.max_token_days)).isoformat(), **extra)


@router.get("/ui/tokens")
def tokens(request: Request, p: MemberDep, db: SessionDep, rt: RuntimeDep) -> HTMLResponse:
    return _tokens_page(request, p, db, rt)


@router.post("/ui/tokens")
def create_token(request: Request, _: CsrfDep, p: MemberDep, db: SessionDep, rt: RuntimeDep,
                 name: str = Form(""), scopes: list[str] = Form([]), expires_at: str = Form("")) -> HTMLResponse:
    secret, token = token_service.create_token(db, p, name, scopes, expires_at or None, rt.settings.auth)
    db.commit()
    # Rendered, not redirected: the secret is shown this once and stored nowhere but its hash.
    return _tokens_page(request, p, db, rt, status=201, new_secret=secret, new_token=token)


@router.post("/ui/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: str, _: CsrfDep, p: MemberDep, db: SessionDep) -> Response:
    token_service.delete_token(db, p, token_id)
    db.commit()
    return redirect(request, "/ui/tokens", "Token revoked")


router.include_router(channels.router)


@router.get("/ui/{rest:path}")
def not_found(rest: str, _: VisitorDep) -> None:
    raise NotFound("There is no such page", "Start again from the list of channels", code="not_found")
