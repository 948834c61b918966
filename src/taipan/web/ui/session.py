"""The UI's login cookie and the CSRF tokens its forms carry.

The browser keeps the session secret that ``accounts.login`` issues in an HttpOnly cookie, so page
scripts never see it. Because browsers attach that cookie to any request for our origin, every form
also carries a token a foreign page cannot know: an HMAC of the session secret once logged in, and
a random value mirrored in a cookie (double submit) for the login form.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Form, Request

from taipan.domain.permissions import ANONYMOUS, Principal
from taipan.errors import Forbidden, Unauthenticated
from taipan.services import tokens
from taipan.web.deps import SessionDep

SESSION_COOKIE = "taipan_session"
CSRF_COOKIE = "taipan_csrf"
COOKIE_PATH = "/ui"
_CSRF_CONTEXT = b"taipan-ui-form"


def visitor(request: Request, db: SessionDep) -> Principal:
    """Who is looking at the page; a stale or unknown cookie is dropped, not an error."""
    p, secret = ANONYMOUS, request.cookies.get(SESSION_COOKIE)
    if secret:
        try:
            found = tokens.principal_for_secret(db, secret)
        except Unauthenticated:
            found = None
        # Only login sessions belong in the cookie; an API token pasted there is not honoured.
        if found is not None and found.kind == "session":
            p = found
            request.state.session_secret = secret
        else:
            request.state.drop_session = True
    request.state.principal = p
    return p


VisitorDep = Annotated[Principal, Depends(visitor)]


def signed_in(p: VisitorDep) -> Principal:
    if not p.authenticated:
        raise Unauthenticated("Please log in to see this page", "Log in with your Taipan user name and password",
                              code="authentication_required")
    return p


MemberDep = Annotated[Principal, Depends(signed_in)]


def csrf_token(request: Request) -> str:
    """The token this visitor's forms must send back; minted on first use for anonymous visitors."""
    secret = getattr(request.state, "session_secret", None)
    if secret:
        return hmac.new(secret.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = request.state.new_csrf = secrets.token_urlsafe(24)
    return token


def check_csrf(request: Request, _: VisitorDep, csrf: str = Form("")) -> None:
    secret = getattr(request.state, "session_secret", None)
    if secret:
        expected = hmac.new(secret.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()
    else:
        expected = request.cookies.get(CSRF_COOKIE, "")
    if not (csrf and expected and hmac.compare_digest(csrf.encode(), expected.encode())):
        raise Forbidden("This form could not be verified, so nothing was changed",
                        "Reload the page and submit the form again (forms expire when you log in or out)",
                        code="csrf_failed")


CsrfDep = Annotated[None, Depends(check_csrf)]
