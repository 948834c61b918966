"""Request dependencies: the runtime, a database session, and the calling Principal."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from taipan.domain.permissions import ANONYMOUS, Principal
from taipan.errors import Unauthenticated
from taipan.runtime import Runtime
from taipan.services import accounts

# Principals are cached briefly so that package serving does not hit the database per request;
# a revoked token therefore stops working within this many seconds.
PRINCIPAL_TTL = 5.0


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_db(request: Request) -> Iterator[Session]:
    with get_runtime(request).sessions() as db:
        yield db


SessionDep = Annotated[Session, Depends(get_db)]


class PrincipalCache:
    def __init__(self) -> None:
        self._items: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Principal | None:
        hit = self._items.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return None

    def put(self, key: str, p: Principal) -> None:
        with self._lock:
            if len(self._items) > 10000:
                self._items.clear()
            self._items[key] = (time.monotonic() + PRINCIPAL_TTL, p)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def credentials(request: Request) -> tuple[str, str | None]:
    """('token', secret) | ('basic', 'user:password') | ('none', None) from the headers."""
    x_auth = request.headers.get("x-auth")
    if x_auth:
        return "token", x_auth.strip()
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return "token", value.strip()
    if scheme.lower() == "basic" and value:
        try:
            return "basic", base64.b64decode(value.strip()).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise Unauthenticated("Malformed basic credentials", "Send base64(user:password)",
                                  code="invalid_credentials") from exc
    return "none", None


# Anaconda Server's documented pip and twine usage puts the token in the user name and this literal
# word in the password (http://<TOKEN>:x-auth-token@host/...); PyPI's puts it in the password of
# the user "__token__".
TOKEN_PASSWORD = "x-auth-token"
TOKEN_USER = "__token__"


def basic_token(user: str, password: str) -> str | None:
    """The token in basic credentials that name one explicitly, else None (a password, or a token
    given as the password of some user name)."""
    if password == TOKEN_PASSWORD and user:
        return user
    if user == TOKEN_USER and password:
        return password
    return None


def resolve_principal(runtime: Runtime, db: Session | None, kind: str, value: str | None, *,
                      cached_only: bool = False) -> Principal | None:
    """The principal for credentials, cached for PRINCIPAL_TTL; with cached_only, None on a miss."""
    if kind == "none" or not value:
        return ANONYMOUS
    cache: PrincipalCache = runtime.extras.setdefault("principals", PrincipalCache())
    # Keyed by a digest: the cache never holds a secret or a password in the clear.
    key = hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()
    hit = cache.get(key)
    if hit is not None or cached_only:
        return hit
    with (runtime.sessions() if db is None else _nullctx(db)) as session:
        if kind == "token":
            p = accounts.principal_for_secret(session, value)
        else:
            user, _, secret = value.partition(":")
            token = basic_token(user, secret)
            if token is not None:
                p = accounts.principal_for_secret(session, token)
            else:
                # A token as the password of any user name; a real password works too.
                try:
                    p = accounts.principal_for_secret(session, secret)
                except Unauthenticated:
                    p = accounts.principal_for_password(session, user, secret)
    cache.put(key, p)
    return p


class _nullctx:
    def __init__(self, db: Session) -> None:
        self.db = db

    def __enter__(self) -> Session:
        return self.db

    def __exit__(self, *exc: object) -> None:
        return None


def get_principal(request: Request, db: SessionDep) -> Principal:
    kind, value = credentials(request)
    if kind == "token":
        # Tokens are validated on every API call (not cached): revocation takes effect at once.
        return accounts.principal_for_secret(db, value or "")
    p = resolve_principal(get_runtime(request), db, kind, value)
    assert p is not None
    return p


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_user(p: PrincipalDep) -> Principal:
    if not p.authenticated:
        raise Unauthenticated("This action requires authentication",
                              "Log in (conda repo login) or pass a token in the X-Auth header",
                              code="authentication_required")
    return p


UserDep = Annotated[Principal, Depends(require_user)]


def base_url(request: Request) -> str:
    configured = get_runtime(request).settings.server.base_url
    return configured.rstrip("/") if configured else str(request.base_url).rstrip("/")
