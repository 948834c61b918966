"""/api/system/settings: run-time server settings (`conda-repo admin`); administrators only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body

from taipan.services import system
from taipan.web.deps import PrincipalDep, RuntimeDep, SessionDep

router = APIRouter(tags=["system"])


@router.get("/system/settings")
def get_settings(p: PrincipalDep, db: SessionDep, rt: RuntimeDep) -> dict[str, Any]:
    return system.get_settings(db, p, rt.settings.auth)


@router.put("/system/settings")
def put_settings(p: PrincipalDep, db: SessionDep, rt: RuntimeDep,
                 changes: dict[str, Any] = Body(..., examples=[{"user_channel_autocreate": True}])) -> dict[str, Any]:
    """Change the settings given (conda-repo-cli sends all of them); unknown keys and bad values are
    refused before anything is stored."""
    result = system.update_settings(db, p, changes, rt.settings.auth)
    db.commit()
    return result
