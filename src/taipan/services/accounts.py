"""Users, passwords, login throttling and first logins. Tokens live in services/tokens.py."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from taipan.db.auth import LoginThrottle
from taipan.db.models import Channel, ChannelOwner, Token, User
from taipan.domain import names
from taipan.domain.names import CHANNEL_NAME_RE
from taipan.domain.permissions import ROLES, Principal
from taipan.errors import Conflict, InvalidInput, NotFound, TooManyRequests, Unauthenticated
from taipan.services import system
from taipan.services.indexing import ring_path_after_commit
from taipan.services.tokens import hash_token, record_revocation
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


def create_user(db: Session, username: str, password: str, *, role: str = "user") -> User:
    """A new account. Its own channel is made at its first login (setting user_channel_autocreate)."""
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
    return user


def _create_default_channel(db: Session, user: User) -> None:
    """A personal channel named after the user, unless that name is taken or cannot be a channel."""
    name = names.default_channel_name(user.username)
    if name is None or db.scalar(select(Channel).where(Channel.path == name)):
        return
    channel = Channel(name=name, path=name, privacy="private")
    db.add(channel)
    db.flush()
    db.add(ChannelOwner(channel_id=channel.id, user_id=user.id))
    ring_path_after_commit(db, name)  # processes that looked it up in vain find it at once


def default_channel_name(db: Session, user: User) -> str | None:
    owned = db.scalars(
        select(Channel.name).join(ChannelOwner, ChannelOwner.channel_id == Channel.id)
        .where(ChannelOwner.user_id == user.id, Channel.parent_id.is_(None)).order_by(Channel.created)
    ).all()
    own = names.default_channel_name(user.username)
    if own in owned:
        return own
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
    """A new password ends every login session (and every cached password check) of the user."""
    user = get_user(db, username)
    user.password_hash = hash_password(validate_password(password))
    user.failed_logins = 0
    db.execute(delete(Token).where(Token.user_id == user.id, Token.kind == "session"))
    record_revocation(db)


def delete_user(db: Session, username: str) -> None:
    user = get_user(db, username)
    if user.role == "admin":
        admins = db.scalar(select(func.count()).select_from(User).where(User.role == "admin"))
        if admins <= 1:
            raise Conflict("Cannot delete the last admin", "Create another admin first",
                           code="last_admin")
    db.delete(user)
    record_revocation(db)


def count_users(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(User)) or 0


# ---------------------------------------------------------------- password checks and throttling

def _backoff(failures: int, free: int, since: datetime | None, cfg: AuthSettings) -> int:
    """Seconds to wait: after ``free`` failures, 2**(n - free) seconds from the last one, capped."""
    excess = failures - free
    if excess < 0 or since is None:
        return 0
    wait = min(2 ** min(excess, 30), cfg.max_login_delay)
    return max(0, int(wait - (now() - since).total_seconds() + 0.999))


def _address_key(addr: str | None) -> str | None:
    return f"addr:{addr}"[:100] if addr else None


def _address_wait(db: Session, addr: str | None, cfg: AuthSettings) -> int:
    key = _address_key(addr)
    row = db.get(LoginThrottle, key) if key else None
    if row is None or (now() - row.last_failed_at).total_seconds() > cfg.address_forget_seconds:
        return 0
    return _backoff(row.failures, cfg.free_address_failures, row.last_failed_at, cfg)


def _count_failure(db: Session, user: User | None, addr: str | None, cfg: AuthSettings) -> None:
    """Count a wrong password against the account and the client address, atomically, and commit."""
    at = now()
    if user is not None:
        db.execute(update(User).where(User.id == user.id)
                   .values(failed_logins=User.failed_logins + 1, last_failed_at=at))
    key = _address_key(addr)
    if key:
        stale = at - timedelta(seconds=cfg.address_forget_seconds)
        bump = (update(LoginThrottle).where(LoginThrottle.key == key).values(
            failures=case((LoginThrottle.last_failed_at < stale, 1), else_=LoginThrottle.failures + 1),
            last_failed_at=at))
        if db.execute(bump).rowcount == 0:
            db.add(LoginThrottle(key=key, failures=1, last_failed_at=at))
    try:
        db.commit()
    except IntegrityError:  # another request inserted this address's row first: count on it
        db.rollback()
        if user is not None:
            db.execute(update(User).where(User.id == user.id)
                       .values(failed_logins=User.failed_logins + 1, last_failed_at=at))
        db.execute(bump)
        db.commit()


def _throttled(message: str, wait: int) -> TooManyRequests:
    return TooManyRequests(message, f"Wait {wait} second{'' if wait == 1 else 's'} before trying again",
                           retry_after=wait, code="login_throttled")


def check_password(db: Session, username: str, password: str, cfg: AuthSettings, addr: str | None = None,
                   hint: str = "Check both and try again") -> User:
    """The one password check (login, the web UI, HTTP basic auth): throttled per account and per
    client address, and as slow for unknown user names as for known ones."""
    if wait := _address_wait(db, addr, cfg):
        raise _throttled("Too many failed sign-ins from your address", wait)
    user = db.scalar(select(User).where(User.username == username))
    if user is not None and (wait := _backoff(user.failed_logins, cfg.free_login_failures,
                                              user.last_failed_at, cfg)):
        raise _throttled(f"Too many failed logins for {username!r}", wait)
    valid = verify_password(user.password_hash if user is not None else _DUMMY_HASH, password)
    if user is None or not valid:
        _count_failure(db, user, addr, cfg)
        raise Unauthenticated("Invalid username or password", hint, code="invalid_credentials")
    if user.failed_logins:
        user.failed_logins = 0
    return user


def login(db: Session, username: str, password: str, cfg: AuthSettings,
          addr: str | None = None) -> tuple[str, User]:
    """Check a password and open a session. The first login may create the user's own channel."""
    user = check_password(db, username, password, cfg, addr)
    if user.last_login_at is None and system.get_setting(db, "user_channel_autocreate", cfg):
        _create_default_channel(db, user)
    user.last_login_at = now()
    secret = _session_secret(user, cfg)
    db.add(Token(user_id=user.id, name="session", token_hash=hash_token(secret), kind="session",
                 scopes=["*"], expires_at=(now() + timedelta(hours=cfg.session_hours)).replace(microsecond=0)))
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


def principal_for_password(db: Session, username: str, password: str, cfg: AuthSettings,
                           addr: str | None = None) -> Principal:
    user = check_password(db, username, password, cfg, addr,
                          hint="Check both, or use a token as the password")
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
