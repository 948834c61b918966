"""Tables behind tokens and logins: earlier secrets of refreshed tokens, the revocation log that
every server process watches, and the per-address login throttle."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from taipan.db.models import Base, utcnow


class TokenSecret(Base):
    """An earlier secret of a token, still valid: a refresh adds a secret instead of replacing the
    one another client holds. The token's current secret is ``tokens.token_hash``."""

    __tablename__ = "token_secrets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_id: Mapped[str] = mapped_column(ForeignKey("tokens.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthRevocation(Base):
    """Append-only: one row per change that takes a credential away. Server processes compare the
    newest ``seq`` with what their credential caches have seen, and drop them when it moved."""

    __tablename__ = "auth_revocations"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginThrottle(Base):
    """Failed password checks per client address (per account they are counted on the user row)."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime] = mapped_column(default=utcnow)
