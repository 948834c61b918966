"""Run-time server settings (`conda-repo admin`, /api/system/settings): stored in the settings table,
defaulting to the static configuration; only admins read or change them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from taipan.db.models import Setting
from taipan.domain.permissions import Principal
from taipan.domain.system_settings import SETTINGS, parse_setting
from taipan.errors import Forbidden, InvalidInput, Unauthenticated
from taipan.settings import AuthSettings


def _defaults(cfg: AuthSettings) -> dict[str, Any]:
    return {"user_channel_autocreate": cfg.user_channel_autocreate}


def get_setting(db: Session, key: str, cfg: AuthSettings) -> Any:
    row = db.get(Setting, key)
    return row.value.get("value") if row is not None and "value" in row.value else _defaults(cfg)[key]


def require_admin(p: Principal) -> None:
    if not p.authenticated:
        raise Unauthenticated("This action requires authentication", "Log in as an administrator",
                              code="authentication_required")
    if not p.is_admin:
        raise Forbidden("Only administrators can see and change the server settings",
                        "Ask an administrator", code="admin_required")
    if not p.has_scope("system:manage"):
        raise Forbidden("Your token does not have the 'system:manage' scope",
                        "Sign in with your password, or use a token with that scope", code="insufficient_scope")


def get_settings(db: Session, p: Principal, cfg: AuthSettings) -> dict[str, Any]:
    require_admin(p)
    return {key: get_setting(db, key, cfg) for key in SETTINGS}


def update_settings(db: Session, p: Principal, changes: Any, cfg: AuthSettings) -> dict[str, Any]:
    """Set the given settings (all are checked before any is stored); answer with all of them."""
    require_admin(p)
    if not isinstance(changes, dict):
        raise InvalidInput("The settings must be a JSON object", 'Send e.g. {"user_channel_autocreate": true}',
                           code="invalid_setting")
    parsed = {str(key): parse_setting(str(key), value) for key, value in changes.items()}
    for key, value in parsed.items():
        row = db.get(Setting, key)
        if row is None:
            db.add(Setting(key=key, value={"value": value}))
        else:
            row.value = {"value": value}
    db.flush()
    return {key: get_setting(db, key, cfg) for key in SETTINGS}
