"""Users, passwords, tokens, login throttling, and turning a presented secret into a Principal."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from taipan.db.models import Channel, ChannelOwner, Token, User
from taipan.domain.names import CHANNEL_NAME_RE, RESERVED_CHANNEL_NAMES
from taipan.domain.permissions import ALL_SCOPES, ROLES, Principal, unknown_scopes
from taipan.errors import Conflict, Forbidden, InvalidInput, NotFound, TooManyRequests, Unauthenticated
from taipan.settings import AuthSettings

_hasher = PasswordHasher()
# Verified against when the user does not exist, so that timing does not reveal which names exist.
_DUMMY_HASH = _hasher.hash("taipan-dummy-password")
USERNAME_RE = CHANNEL_NAME_RE
MIN_PASSWORD = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- users

def validate_username(username: str) -> str:
    if not username or len(username) > 64 or not USERNAME_RE.match(username):
        raise InvalidInput(f"Invalid user name {username[:80]!r}",
                           "User names start with a lower-case letter and use a-z, 0-9, '_' and '-'",
                           code="invalid_username")
    return username


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput("The password is too short", f"Use at least {MIN_PASSWORD} characters",
                           code="weak_password")
    return password


def create_user(db: Session, username: str, password: str, *, role: str = "user",
                autocreate_channel: bool = True) -> User:
    validate_username(username)
    validate_password(password)
    if role not in ROLES:
        raise InvalidInput(f"Unknown role {role!r}", f"Roles are: {', '.join(ROLES)}", code="invalid_role")
    if db.scalar(select(User).where(User.username == username)):
        raise Conflict(f"User {username!r} already exists", "Choose another user name",
                       code="user_exists")
    user = User(username=username, password_hash=hash_password(password), role=role)
    db.add(user)
    db.flush()
    if autocreate_channel:
        _create_default_channel(db, user)
    return user


def _create_default_channel(db: Session, user: User) -> None:
    """A personal channel named after the user, unless that name is taken or reserved."""
    name = user.username
    if name in RESERVED_CHANNEL_NAMES or db.scalar(select(Channel).where(Channel.path == name)):
        return
    channel = Channel(name=name, path=name, privacy="private")
    db.add(channel)
    db.flush()
    db.add(ChannelOwner(channel_id=channel.id, user_id=user.id))


def default_channel_name(db: Session, user: User) -> str | None:
    owned = db.scalars(
        select(Channel.name).join(ChannelOwner, ChannelOwner.channel_id == Channel.id)
        .where(ChannelOwner.user_id == user.id, Channel.parent_id.is_(None)).order_by(Channel.created)
    ).all()
    if user.username in owned:
        return user.username
    return owned[0] if owned else None


def get_user(db: Session, username: str) -> User:
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"No user named {username!r}", "List users with `taipan user list`",
                       code="user_not_found")
    return user


def list_users(db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(User.username)))


def set_password(db: Session, username: str, password: str) -> None:
    user = get_user(db, username)
    user.password_hash = hash_password(validate_password(password))
    user.failed_logins = 0
    db.execute(delete(Token).where(Token.user_id == user.id, Token.kind == "session"))


def delete_user(db: Session, username: str) -> None:
    user = get_user(db, username)
    if user.role == "admin":
        admins = db.scalar(select(func.count()).select_from(User).where(User.role == "admin"))
        if admins <= 1:
            raise Conflict("Cannot delete the last admin", "Create another admin first",
                           code="last_admin")
    db.delete(user)


def count_users(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(User)) or 0


# ---------------------------------------------------------------- login

def _login_delay(user: User, cfg: AuthSettings) -> int:
    excess = user.failed_logins - cfg.free_login_failures
    if excess < 0 or user.last_failed_at is None:
        return 0
    wait = min(2 ** excess, cfg.max_login_delay)
    elapsed = (now() - user.last_failed_at).total_seconds()
    return max(0, int(wait - elapsed + 0.999))


def login(db: Session, username: str, password: str, cfg: AuthSettings) -> tuple[str, User]:
    """Check a password and open a session; repeated failures make the caller wait."""
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        verify_password(_DUMMY_HASH, password)
        raise Unauthenticated("Invalid username or password", "Check both and try again",
                              code="invalid_credentials")
    wait = _login_delay(user, cfg)
    if wait:
        raise TooManyRequests(f"Too many failed logins for {username!r}",
                              f"Wait {wait} second{'' if wait == 1 else 's'} before trying again", retry_after=wait,
                              code="login_throttled")
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        user.last_failed_at = now()
        db.commit()
        raise Unauthenticated("Invalid username or password", "Check both and try again",
                              code="invalid_credentials")
    user.failed_logins = 0
    secret = _session_secret(user, cfg)
    db.add(Token(user_id=user.id, name="session", token_hash=hash_token(secret), kind="session",
                 scopes=["*"], expires_at=now() + timedelta(hours=cfg.session_hours)))
    # Sessions are short-lived; sweep the expired ones so the table stays small.
    db.execute(delete(Token).where(Token.kind == "session", Token.expires_at < now()))
    return secret, user


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _session_secret(user: User, cfg: AuthSettings) -> str:
    """A JWT-shaped session token: clients that decode the payload for roles (as conda-repo-cli
    does) can; the server never trusts the payload and only looks up the hash of the whole string."""
    exp = int((now() + timedelta(hours=cfg.session_hours)).timestamp())
    payload = {"sub": user.id, "preferred_username": user.username, "exp": exp,
               "realm_access": {"roles": [user.role]}, "azp": "taipan"}
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}.{secrets.token_urlsafe(32)}"


# ---------------------------------------------------------------- tokens

def _parse_expiry(expires_at: str | None, cfg: AuthSettings) -> datetime:
    if not expires_at:
        return now() + timedelta(days=30)
    try:
        if len(expires_at) == 10:
            day = date.fromisoformat(expires_at)
            when = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        else:
            when = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInput(f"Invalid expires_at {expires_at!r}", "Use a date such as 2027-01-31",
                           code="invalid_expiry") from exc
    if when <= now():
        raise InvalidInput(f"expires_at {expires_at} is in the past", "Give a future date",
                           code="invalid_expiry")
    if when > now() + timedelta(days=cfg.max_token_days + 1):
        raise InvalidInput(f"expires_at {expires_at} is too far away",
                           f"Tokens live at most {cfg.max_token_days} days", code="invalid_expiry")
    return when


def create_token(db: Session, principal: Principal, name: str, scopes: Iterable[str] | None,
                 expires_at: str | None, cfg: AuthSettings,
                 resources: list[Any] | None = None) -> tuple[str, Token]:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("A token needs a name of 1-200 characters", "Pass a name such as 'ci'",
                           code="invalid_token_name")
    scopes = list(scopes) if scopes else list(ALL_SCOPES)
    bad = unknown_scopes(scopes)
    if bad:
        raise InvalidInput(f"Unknown scope(s): {', '.join(bad)}",
                           "List the valid scopes with GET /api/account/scopes", code="invalid_scope")
    # A token can never carry more than the credential that creates it.
    if principal.kind == "scope":
        missing = [s for s in scopes if not principal.has_scope(s)]
        if missing:
            raise Forbidden(f"Your token lacks scope(s) {', '.join(missing)}",
                            "Create tokens with a login session or a broader token",
                            code="insufficient_scope")
    secret = secrets.token_hex(24)
    token = Token(user_id=principal.user_id, name=name, token_hash=hash_token(secret), kind="scope",
                  scopes=sorted(set(scopes)), resources=resources or [],
                  expires_at=_parse_expiry(expires_at, cfg))
    db.add(token)
    db.flush()
    return secret, token


def list_tokens(db: Session, principal: Principal) -> list[Token]:
    return list(db.scalars(select(Token).where(Token.user_id == principal.user_id, Token.kind == "scope")
                           .order_by(Token.created_at)))


def _own_token(db: Session, principal: Principal, token_id: str) -> Token:
    token = db.get(Token, token_id)
    if token is None or token.user_id != principal.user_id or token.kind != "scope":
        raise NotFound(f"No token with id {token_id!r}", "List your tokens with GET /api/account/tokens",
                       code="token_not_found")
    return token


def rotate_token(db: Session, principal: Principal, token_id: str) -> tuple[str, Token]:
    token = _own_token(db, principal, token_id)
    secret = secrets.token_hex(24)
    token.token_hash = hash_token(secret)
    return secret, token


def delete_token(db: Session, principal: Principal, token_id: str) -> None:
    db.delete(_own_token(db, principal, token_id))


def end_session(db: Session, principal: Principal) -> None:
    """Log out: delete the session token behind ``principal``, so a copied cookie stops working too."""
    token = db.get(Token, principal.token_id) if principal.token_id else None
    if token is not None and token.kind == "session" and token.user_id == principal.user_id:
        db.delete(token)


def principal_for_secret(db: Session, secret: str) -> Principal:
    """The principal a token stands for; raise Unauthenticated for unknown or expired tokens."""
    token = db.scalar(select(Token).where(Token.token_hash == hash_token(secret)))
    if token is None:
        raise Unauthenticated("The token is not valid", "Log in again or create a new token",
                              code="invalid_token")
    if token.expires_at <= now():
        raise Unauthenticated("The token has expired", "Log in again or create a new token",
                              code="token_expired")
    return principal_of(token)


def principal_of(token: Token) -> Principal:
    return Principal(user_id=token.user_id, username=token.user.username, role=token.user.role,
                     scopes=frozenset(token.scopes), token_id=token.id, kind=token.kind)


def principal_for_password(db: Session, username: str, password: str) -> Principal:
    user = db.scalar(select(User).where(User.username == username))
    if user is None or not verify_password(user.password_hash, password):
        raise Unauthenticated("Invalid username or password", "Check both, or use a token as the password",
                              code="invalid_credentials")
    return Principal(user_id=user.id, username=user.username, role=user.role, scopes=frozenset({"*"}),
                     kind="session")


def bootstrap_admin(db: Session, username: str, password: str | None) -> str | None:
    """Create the first admin when there are no users; return the password if it was generated."""
    if count_users(db):
        return None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    create_user(db, username, password, role="admin")
    return generated
