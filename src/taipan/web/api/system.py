"""/api/system/settings: run-time server settings (`conda-repo admin`); administrators only."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Body

from taipan.domain.system_settings import SETTINGS, parse_bool
from taipan.services import system
from taipan.web.deps import PrincipalDep, RuntimeDep, SessionDep

router = APIRouter(tags=["system"])


def _words(*words: str) -> str:
    """A pattern for any of ``words`` in any letter case, with blanks around (as the parser reads)."""
    spelled = ["".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in w) for w in words]
    return r"^\s*(" + "|".join(spelled) + r")\s*$"


_BOOL = {"anyOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]},
                   {"type": "string", "pattern": _words("true", "yes", "on", "1", "false", "no", "off", "0")}]}
# The settings a client may send (any subset), as the parsers of domain/system_settings.py read them.
SETTINGS_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "additionalProperties": False,
    "properties": {name: {**(_BOOL if spec.parse is parse_bool else {}), "description": spec.help}
                   for name, spec in SETTINGS.items()}}}}}


@router.get("/system/settings")
def get_settings(p: PrincipalDep, db: SessionDep, rt: RuntimeDep) -> dict[str, Any]:
    return system.get_settings(db, p, rt.settings.auth)


@router.put("/system/settings", openapi_extra={"requestBody": SETTINGS_BODY})
def put_settings(p: PrincipalDep, db: SessionDep, rt: RuntimeDep,
                 changes: dict[str, Any] = Body(..., examples=[{"user_channel_autocreate": True}])) -> dict[str, Any]:
    """Change the settings given (conda-repo-cli sends all of them); unknown keys and bad values are
    refused before anything is stored."""
    result = system.update_settings(db, p, changes, rt.settings.auth)
    db.commit()
    return result
