"""Request dependencies: the runtime, a database session, and the calling Principal."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.orm import Session

from taipan.domain.permissions import ANONYMOUS, Principal
from taipan.errors import Unauthenticated
from taipan.runtime import Runtime
from taipan.services import accounts, tokens

# Package serving answers from cached principals, so that a conda client revalidating its indexes
# costs no database query. Revocation still bites at once: a revoking commit in this process empties
# the cache, and other processes notice the revocation log moving when they next look, which is at
# most REVOCATION_CHECK seconds after their last look (while credentials are in use, web.keep_fresh
# looks before that runs out, so requests need not). No entry outlives its token's expiry.
# An entry lasts while it is used: it is forgotten once unused for its lifetime, PRINCIPAL_TTL or
# server.keep_fresh_seconds if longer (a client run after a pause within that is answered from
# memory, as the other caches keep what was used within it); at most _MAX_ENTRIES are kept.
# Nothing else about a credential can change unseen: whatever takes one away (a revoked or deleted
# token, a new password, a deleted user) moves the revocation log.
REVOCATION_CHECK = 0.5
PRINCIPAL_TTL = 60.0
_MAX_ENTRIES = 10000


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_db(request: Request) -> Iterator[Session]:
    with get_runtime(request).sessions() as db:
        yield db


SessionDep = Annotated[Session, Depends(get_db)]


class PrincipalCache:
    """Credential digest -> Principal, valid while the revocation log has not moved."""

    def __init__(self, read_seq: Callable[[], int], lifetime: float = PRINCIPAL_TTL) -> None:
        self._read_seq = read_seq
        self.lifetime = lifetime  # an entry unused for this long is forgotten
        self._pruned = time.monotonic()
        self._items: dict[str, tuple[float, float, Principal]] = {}
        self._lock = threading.Lock()
        self._seq: int | None = None  # None: unknown, look before trusting anything
        self._checked = float("-inf")
        self._generation = 0  # moved by invalidate: a look at the log begun before must not count
        self.used = float("-inf")  # when an entry was last asked for (time.monotonic())

    def current(self) -> bool:
        """Was the revocation log looked at recently enough to trust the entries without I/O?"""
        return self._seq is not None and time.monotonic() - self._checked < REVOCATION_CHECK

    def get(self, key: str) -> Principal | None:
        """A fresh entry, without I/O; None on a miss or when a look at the revocation log is due."""
        hit = self._items.get(key)
        if hit is None:
            return None
        now = self.used = time.monotonic()
        if self._seq is None or now - self._checked >= REVOCATION_CHECK:
            return None
        deadline, expires, p = hit
        if deadline <= now or expires <= time.time():
            return None
        if deadline - now < self.lifetime / 2:  # in use: kept (a write at most twice per lifetime)
            with self._lock:
                if self._items.get(key) is hit:  # not forgotten meanwhile (a revocation)
                    self._items[key] = (now + self.lifetime, expires, p)
        return p

    def sync(self) -> int | None:
        """Look at the revocation log if due (one tiny query); forget everything if it moved.
        Returns the sequence number entries put now must carry."""
        if self.current():
            return self._seq
        return self._look()

    def keep_fresh(self, used_since: float, age: float) -> None:
        """Look at the revocation log ahead of need: when an entry was asked for since ``used_since``
        and the last look is ``age`` seconds old (less than REVOCATION_CHECK), so that requests keep
        finding the entries current. Called by the serving process's refresher (web.keep_fresh)."""
        if self.used < used_since or not self._items:
            return
        if time.monotonic() - self._pruned > PRINCIPAL_TTL:
            self._prune()
        if self._seq is not None and time.monotonic() - self._checked < age:
            return
        self._look()

    def _prune(self) -> None:
        """Forget the entries unused for their lifetime (``get`` no longer answers them)."""
        now = self._pruned = time.monotonic()
        with self._lock:
            for key in [k for k, hit in self._items.copy().items() if hit[0] <= now]:
                self._items.pop(key, None)

    def _look(self) -> int | None:
        generation = self._generation
        seq = self._read_seq()
        with self._lock:
            if generation != self._generation:
                return None  # revoked here meanwhile: what was read may predate it; look again next time
            if seq != self._seq:
                self._items.clear()
            self._seq, self._checked = seq, time.monotonic()
            return seq

    def put(self, key: str, p: Principal, seq: int | None) -> None:
        expires = p.expires_at.timestamp() if p.expires_at is not None else float("inf")
        with self._lock:
            if seq is None or seq != self._seq:
                return  # a revocation happened while this lookup ran: do not keep what it found
            if len(self._items) >= _MAX_ENTRIES:
                self._items.clear()
            self.used = now = time.monotonic()
            self._items[key] = (now + self.lifetime, expires, p)

    def invalidate(self) -> None:
        """A credential was revoked here: forget everything, and look at the log before trusting again."""
        with self._lock:
            self._items.clear()
            self._seq = None
            self._checked = float("-inf")
            self._generation += 1


def principal_cache(runtime: Runtime) -> PrincipalCache:
    cache = runtime.extras.get("principals")
    if cache is None:
        with _setup_lock:
            cache = runtime.extras.get("principals")
            if cache is None:
                cache = runtime.extras["principals"] = _new_cache(runtime)
    return cache


_setup_lock = threading.Lock()


def _new_cache(runtime: Runtime) -> PrincipalCache:
    def read_seq() -> int:
        with runtime.sessions() as db:
            return tokens.revocation_seq(db)

    cache = PrincipalCache(read_seq, max(PRINCIPAL_TTL, runtime.settings.server.keep_fresh_seconds))

    def after_commit(session: Session) -> None:
        if session.info.pop("auth_revoked", False):
            cache.invalidate()

    def after_rollback(session: Session) -> None:
        session.info.pop("auth_revoked", None)

    # Every session of this runtime: whoever revokes a credential, this process forgets it at commit.
    event.listen(runtime.sessions, "after_commit", after_commit)
    event.listen(runtime.sessions, "after_soft_rollback", lambda session, _tx: after_rollback(session))
    return cache


def credentials(request: Request) -> tuple[str, str | None]:
    """('token', secret) | ('basic', 'user:password') | ('none', None) from the headers."""
    headers = request.headers
    return credentials_of(headers.get("x-auth"), headers.get("authorization"))


def credentials_of(x_auth: str | None, auth: str | None) -> tuple[str, str | None]:
    """``credentials`` from the X-Auth and Authorization header values (the first of each)."""
    if x_auth:
        return "token", x_auth.strip()
    if not auth:
        return "none", None
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
    if password.lower() == TOKEN_PASSWORD and user:
        return user
    if user == TOKEN_USER and password:
        return password
    return None


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def resolve_principal(runtime: Runtime, db: Session | None, kind: str, value: str | None, *,
                      addr: str | None = None, cached_only: bool = False) -> Principal | None:
    """The principal for credentials (cached, see PrincipalCache); with cached_only, None unless
    the answer needs no I/O."""
    if kind == "none" or not value:
        return ANONYMOUS
    cache = principal_cache(runtime)
    # Keyed by a digest: the cache never holds a secret or a password in the clear.
    key = hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()
    hit = cache.get(key)
    if hit is not None or cached_only:
        return hit
    seq = cache.sync()
    if (hit := cache.get(key)) is not None:  # the look at the log was all that was due
        return hit
    with (runtime.sessions() if db is None else _nullctx(db)) as session:
        p = _lookup(runtime, session, kind, value, addr)
    cache.put(key, p, seq)
    return p


def _lookup(runtime: Runtime, db: Session, kind: str, value: str, addr: str | None) -> Principal:
    if kind == "token":
        return tokens.principal_for_secret(db, value)
    user, _, secret = value.partition(":")
    explicit = basic_token(user, secret)
    if explicit is not None:  # TOKEN:x-auth-token or __token__:TOKEN
        return tokens.principal_for_secret(db, explicit)
    # A token as the password of any user name; a real password works too (throttled like
    # /api/auth/login).
    try:
        return tokens.principal_for_secret(db, secret)
    except Unauthenticated as exc:
        if exc.code == "token_expired":
            raise
    return accounts.principal_for_password(db, user, secret, runtime.settings.auth, addr)


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
        # Tokens are looked up on every API call (not cached).
        return tokens.principal_for_secret(db, value or "")
    p = resolve_principal(get_runtime(request), db, kind, value, addr=client_address(request))
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
