"""Who may do what: roles x channel privacy x token scopes, as pure predicates."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime

# The scopes a token may carry (conda-repo-cli's list, plus the mirror, CVE, token and system ones).
ALL_SCOPES: tuple[str, ...] = (
    "channel:create", "channel:view", "channel:edit", "channel:delete", "channel:history",
    "channel:view-artifacts", "channel.default-channel:edit", "channel.group:edit",
    "subchannel:create", "subchannel:view", "subchannel:edit", "subchannel:delete",
    "subchannel:history", "subchannel:view-artifacts", "subchannel.group:edit",
    "artifact:create", "artifact:view", "artifact:edit", "artifact:download", "artifact:delete",
    "mirror:view", "mirror:manage", "cve:view", "cve:manage", "token:manage", "system:manage",
)
# What only administrators can ever use: offering them to others would only invite confusion.
ADMIN_SCOPES = frozenset({"mirror:manage", "cve:manage", "system:manage"})
# "repo" is the catch-all scope of the CLI's help text; "*" marks a password login (session).
WILDCARD_SCOPES = frozenset({"repo", "*"})
# Scopes that a token's "repo" wildcard does not imply: managing tokens hands out new credentials,
# so an API token must say so explicitly. A login session ("*") holds them.
EXPLICIT_SCOPES = frozenset({"token:manage"})
KNOWN_SCOPES = frozenset(ALL_SCOPES) | WILDCARD_SCOPES

PRIVACY_LEVELS = ("public", "authenticated", "private")
ROLES = ("admin", "user")


@dataclass(frozen=True)
class Principal:
    """The caller of a request: anonymous (user_id None), or a user with a token's scopes."""

    user_id: str | None = None
    username: str | None = None
    role: str = "anonymous"
    scopes: frozenset[str] = field(default_factory=frozenset)
    token_id: str | None = None
    kind: str = "anonymous"  # anonymous | session | scope
    # When the credential stops working (None: a password, which does not expire).
    expires_at: datetime | None = None

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def has_scope(self, scope: str) -> bool:
        if not self.authenticated:
            return False
        if scope in self.scopes or "*" in self.scopes:
            return True
        if "repo" in self.scopes and scope not in EXPLICIT_SCOPES:
            return True
        # A channel scope covers the matching subchannel one (tokens made for channel work).
        if scope.startswith("subchannel"):
            return ("channel" + scope[len("subchannel"):]) in self.scopes
        return False

    def holds(self, scope: str) -> bool:
        """Does this credential hold ``scope`` itself (wildcards included), so it may pass it on?"""
        if scope == "*":
            return "*" in self.scopes
        if scope == "repo":
            return bool(self.scopes & WILDCARD_SCOPES)
        return self.has_scope(scope)


ANONYMOUS = Principal()


def unknown_scopes(scopes: Iterable[str]) -> list[str]:
    return [s for s in scopes if s not in KNOWN_SCOPES]


def grantable_scopes(role: str) -> tuple[str, ...]:
    """The scopes a user of ``role`` can hold: the admin-only ones are for admins."""
    return ALL_SCOPES if role == "admin" else tuple(s for s in ALL_SCOPES if s not in ADMIN_SCOPES)


def offered_scopes(p: Principal) -> list[str]:
    """The scopes ``p`` may put on a new token: what its role allows and its credential holds."""
    return [s for s in grantable_scopes(p.role) if p.holds(s)]


def missing_scopes(p: Principal, scopes: Iterable[str]) -> list[str]:
    """The scopes of ``scopes`` that ``p`` does not hold: a token may never pass on more than it has."""
    return [s for s in scopes if not p.holds(s)]


def can_manage_tokens(p: Principal) -> bool:
    """Listing, creating, refreshing and deleting tokens: a login session, or the token:manage scope."""
    return p.authenticated and p.has_scope("token:manage")


def can_read_channel(p: Principal, privacy: str, owner_ids: Collection[str]) -> bool:
    """May ``p`` see the channel and fetch its packages (scopes are checked separately)?"""
    if privacy == "public":
        return True
    if not p.authenticated:
        return False
    if privacy == "authenticated" or p.is_admin:
        return True
    return p.user_id in owner_ids


def can_write_channel(p: Principal, owner_ids: Collection[str]) -> bool:
    return p.authenticated and (p.is_admin or p.user_id in owner_ids)
