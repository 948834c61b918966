"""API tokens: create, list, refresh, delete and revoke them; turn a presented secret into a Principal;
and the revocation log that tells every server process to forget what it cached.

Who may manage tokens: a login session (a password sign-in), or an API token that carries the
``token:manage`` scope. The catch-all ``repo`` scope of a token does not imply it. Whatever the
credential, a token never mints, refreshes or reveals a token with more scopes than its own, nor one
that outlives it.

A refresh (``PUT /api/account/tokens/<id>``, which conda-repo-cli sends at every sign-in) renews the
token's lifetime and answers with a new secret, but the earlier secrets stay valid: two clients that
share one token name (``repo-cli-token-<host>``) must not log each other out, and conda's token files
must not go stale. Deleting the token revokes all of its secrets at once.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from taipan.db.auth import AuthRevocation, TokenSecret
from taipan.db.models import Token
from taipan.domain.permissions import (
    ADMIN_SCOPES,
    Principal,
    can_manage_tokens,
    missing_scopes,
    offered_scopes,
    unknown_scopes,
)
from taipan.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from taipan.settings import AuthSettings

# The live secrets a token keeps (its current one and the earlier ones refreshes left valid).
MAX_SECRETS = 10
DEFAULT_LIFETIME = timedelta(days=30)
# Keep this many rows of the revocation log; only the newest sequence number matters.
KEEP_REVOCATIONS = 100


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def now() -> datetime:
    # Second resolution: what a client is told is exactly what is stored and enforced.
    return datetime.now(UTC).replace(microsecond=0)


# ---------------------------------------------------------------- the revocation log

def record_revocation(db: Session) -> None:
    """Note, in the caller's transaction, that a credential was taken away. Other server processes
    see the new sequence number within a second; this process drops its caches at commit."""
    row = AuthRevocation()
    db.add(row)
    db.flush()
    if row.seq % KEEP_REVOCATIONS == 0:
        db.execute(delete(AuthRevocation).where(AuthRevocation.seq <= row.seq - KEEP_REVOCATIONS))
    db.info["auth_revoked"] = True


def revocation_seq(db: Session) -> int:
    return int(db.scalar(select(func.max(AuthRevocation.seq))) or 0)


# ---------------------------------------------------------------- checks

def require_token_management(p: Principal) -> None:
    if not p.authenticated:
        raise Unauthenticated("This action requires authentication", "Log in or pass a token",
                              code="authentication_required")
    if not can_manage_tokens(p):
        raise Forbidden("Your token may not manage tokens",
                        "Sign in with your password (conda-repo login), or use a token with the "
                        "'token:manage' scope", code="insufficient_scope")


def _require_no_more_than(p: Principal, scopes: Iterable[str], what: str) -> None:
    missing = missing_scopes(p, scopes)
    if missing:
        raise Forbidden(f"Your token cannot {what}: it lacks {', '.join(sorted(missing))}",
                        "Sign in with your password, or use a token that holds those scopes",
                        code="insufficient_scope")


def parse_expiry(expires_at: str | None, cfg: AuthSettings) -> datetime | None:
    """An ISO date (the end of that day, UTC, as conda-repo-cli sends) or date-time; None if not given."""
    if not expires_at:
        return None
    try:
        if len(expires_at) == 10:
            day = date.fromisoformat(expires_at)
            when = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        else:
            when = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInput(f"Invalid expires_at {expires_at[:80]!r}",
                           "Use a date such as 2027-01-31 or a date-time such as 2027-01-31T12:00:00Z",
                           code="invalid_expiry") from exc
    when = when.astimezone(UTC).replace(microsecond=0)
    if when <= now():
        raise InvalidInput(f"expires_at {expires_at} is in the past", "Give a future date",
                           code="invalid_expiry")
    if when > now() + timedelta(days=cfg.max_token_days + 1):
        raise InvalidInput(f"expires_at {expires_at} is too far away",
                           f"Tokens live at most {cfg.max_token_days} days", code="invalid_expiry")
    return when


def _check_scopes(p: Principal, scopes: list[str]) -> None:
    bad = unknown_scopes(scopes)
    if bad:
        raise InvalidInput(f"Unknown scope(s): {', '.join(bad)}",
                           "List the valid scopes with GET /api/account/scopes", code="invalid_scope")
    if "*" in scopes:
        raise InvalidInput("The scope '*' belongs to login sessions",
                           "Use 'repo' for a token with every scope", code="invalid_scope")
    if not p.is_admin and (admin_only := sorted(set(scopes) & ADMIN_SCOPES)):
        raise InvalidInput(f"Only administrators can hold the scope(s) {', '.join(admin_only)}",
                           "Leave them out; GET /api/account/scopes lists the ones you can use",
                           code="invalid_scope")
    _require_no_more_than(p, scopes, "create a token with more scopes than its own")


# ---------------------------------------------------------------- tokens

def create_token(db: Session, p: Principal, name: str, scopes: Iterable[str] | None,
                 expires_at: str | None, cfg: AuthSettings,
                 resources: list[Any] | None = None) -> tuple[str, Token]:
    require_token_management(p)
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("A token needs a name of 1-200 characters", "Pass a name such as 'ci'",
                           code="invalid_token_name")
    # No scopes asked for: everything the caller may pass on.
    wanted = sorted(set(scopes)) if scopes else offered_scopes(p)
    _check_scopes(p, wanted)
    when = parse_expiry(expires_at, cfg)
    limit = p.expires_at if p.kind == "scope" else None
    if when is None:
        when = now() + DEFAULT_LIFETIME
        if limit is not None:
            when = min(when, limit)
    elif limit is not None and when > limit:
        raise Forbidden("A token cannot create a token that outlives it",
                        f"Choose an expiry up to {limit.isoformat()}, or sign in with your password",
                        code="insufficient_scope")
    secret = secrets.token_hex(24)
    token = Token(user_id=p.user_id, name=name, token_hash=hash_token(secret), kind="scope",
                  scopes=wanted, resources=resources or [], created_at=now(), expires_at=when)
    db.add(token)
    db.flush()
    return secret, token


def list_tokens(db: Session, p: Principal) -> list[Token]:
    require_token_management(p)
    return list(db.scalars(select(Token).where(Token.user_id == p.user_id, Token.kind == "scope")
                           .order_by(Token.created_at)))


def _own_token(db: Session, p: Principal, token_id: str) -> Token:
    token = db.get(Token, token_id)
    if token is None or token.user_id != p.user_id or token.kind != "scope":
        raise NotFound(f"No token with id {token_id[:80]!r}", "List your tokens with GET /api/account/tokens",
                       code="token_not_found")
    return token


def _renewed_expiry(p: Principal, token: Token, cfg: AuthSettings) -> datetime:
    """The token's lifetime again, from now; never shorter than it was, never past the caller's own."""
    lifetime = token.expires_at - (token.refreshed_at or token.created_at)
    lifetime = min(max(lifetime, timedelta(seconds=1)), timedelta(days=cfg.max_token_days))
    renewed = now() + lifetime
    if p.kind == "scope" and p.expires_at is not None:
        renewed = min(renewed, p.expires_at)
    return max(renewed, token.expires_at)


def refresh_token(db: Session, p: Principal, token_id: str, cfg: AuthSettings, *,
                  revoke_previous: bool = False) -> tuple[str, Token]:
    """A new secret for the token and a renewed lifetime; earlier secrets stay valid unless
    ``revoke_previous`` (a real rotation, e.g. after a leak)."""
    require_token_management(p)
    token = _own_token(db, p, token_id)
    _require_no_more_than(p, token.scopes, "refresh a token with more scopes than its own")
    earlier = list(db.scalars(select(TokenSecret).where(TokenSecret.token_id == token.id)
                              .order_by(TokenSecret.id.desc())))
    if revoke_previous:
        dropped = earlier
    else:
        db.add(TokenSecret(token_id=token.id, secret_hash=token.token_hash, created_at=now()))
        dropped = earlier[MAX_SECRETS - 2:]
    for row in dropped:
        db.delete(row)
    if dropped or revoke_previous:
        record_revocation(db)
    secret = secrets.token_hex(24)
    token.expires_at = _renewed_expiry(p, token, cfg)
    token.token_hash = hash_token(secret)
    token.refreshed_at = now()
    db.flush()
    return secret, token


def delete_token(db: Session, p: Principal, token_id: str) -> None:
    require_token_management(p)
    db.delete(_own_token(db, p, token_id))
    record_revocation(db)


def revoke_secret(db: Session, secret: str) -> bool:
    """Log out the credential ``secret``: a session ends; a token loses this secret only (another
    client may hold an earlier one) and goes away with its last one. True if something was revoked."""
    digest = hash_token(secret)
    token = db.scalar(select(Token).where(Token.token_hash == digest))
    if token is None:
        row = db.scalar(select(TokenSecret).where(TokenSecret.secret_hash == digest))
        if row is None:
            return False
        db.delete(row)
    elif token.kind == "session":
        db.delete(token)
    else:
        newest = db.scalar(select(TokenSecret).where(TokenSecret.token_id == token.id)
                           .order_by(TokenSecret.id.desc()).limit(1))
        if newest is None:
            db.delete(token)
        else:
            # The newest earlier secret becomes the current one; the presented one is gone.
            token.token_hash = newest.secret_hash
            db.delete(newest)
    record_revocation(db)
    return True


def end_session(db: Session, p: Principal) -> None:
    """Log out: delete the session token behind ``p``, so a copied cookie stops working too."""
    token = db.get(Token, p.token_id) if p.token_id else None
    if token is not None and token.kind == "session" and token.user_id == p.user_id:
        db.delete(token)
        record_revocation(db)


def principal_for_secret(db: Session, secret: str) -> Principal:
    """The principal a token stands for; raise Unauthenticated for unknown or expired tokens."""
    digest = hash_token(secret)
    token = db.scalar(select(Token).where(Token.token_hash == digest))
    if token is None:
        token = db.scalar(select(Token).join(TokenSecret, TokenSecret.token_id == Token.id)
                          .where(TokenSecret.secret_hash == digest))
    if token is None:
        raise Unauthenticated("The token is not valid", "Log in again or create a new token",
                              code="invalid_token")
    if token.expires_at <= datetime.now(UTC):
        raise Unauthenticated("The token has expired", "Log in again or create a new token",
                              code="token_expired")
    return principal_of(token)


def principal_of(token: Token) -> Principal:
    return Principal(user_id=token.user_id, username=token.user.username, role=token.user.role,
                     scopes=frozenset(token.scopes), token_id=token.id, kind=token.kind,
                     expires_at=token.expires_at)
