"""Who may do what: roles x channel privacy x token scopes, as pure predicates."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

# The scopes a token may carry (conda-repo-cli's list, plus cve:manage, mirror:manage and "repo").
ALL_SCOPES: tuple[str, ...] = (
    "channel:create", "channel:view", "channel:edit", "channel:delete", "channel:history",
    "channel:view-artifacts", "channel.default-channel:edit", "channel.group:edit",
    "subchannel:create", "subchannel:view", "subchannel:edit", "subchannel:delete",
    "subchannel:history", "subchannel:view-artifacts", "subchannel.group:edit",
    "artifact:create", "artifact:view", "artifact:edit", "artifact:download", "artifact:delete",
    "mirror:view", "mirror:manage", "cve:view", "cve:manage",
)
# "repo" is the catch-all scope of the CLI's help text; "*" marks a login session.
WILDCARD_SCOPES = frozenset({"repo", "*"})
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

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def has_scope(self, scope: str) -> bool:
        if not self.authenticated:
            return False
        if self.scopes & WILDCARD_SCOPES or scope in self.scopes:
            return True
        # A channel scope covers the matching subchannel one (tokens made for channel work).
        if scope.startswith("subchannel"):
            return ("channel" + scope[len("subchannel"):]) in self.scopes
        return False


ANONYMOUS = Principal()


def unknown_scopes(scopes: Iterable[str]) -> list[str]:
    return [s for s in scopes if s not in KNOWN_SCOPES]


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
