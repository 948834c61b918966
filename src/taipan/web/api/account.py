"""/api/auth/login and /api/account/*: sessions, the caller's account, channels, scopes and tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from taipan.domain.permissions import ALL_SCOPES
from taipan.errors import Unauthenticated
from taipan.services import accounts, channels
from taipan.web.deps import RuntimeDep, SessionDep, UserDep

router = APIRouter(tags=["account"])


class LoginBody(BaseModel):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1000)


class TokenBody(BaseModel):
    name: str = ""
    expires_at: str | None = None
    scopes: list[str] | None = None
    resources: list[Any] | None = None


def _token_json(t: Any) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "type": t.kind, "scopes": t.scopes, "resources": t.resources,
            "metadata": {}, "created_at": t.created_at.isoformat(), "expires_at": t.expires_at.isoformat()}


@router.post("/auth/login")
def login(body: LoginBody, db: SessionDep, rt: RuntimeDep) -> dict[str, Any]:
    secret, user = accounts.login(db, body.username, body.password, rt.settings.auth)
    db.commit()
    return {"token": secret, "refresh_token": secret, "username": user.username, "roles": [user.role],
            "expires_in": rt.settings.auth.session_hours * 3600}


@router.get("/account")
@router.get("/account/me")
def account(p: UserDep, db: SessionDep) -> dict[str, Any]:
    user = accounts.get_user(db, p.username or "")
    return {"user_id": user.id, "username": user.username, "roles": [user.role],
            "default_channel_name": accounts.default_channel_name(db, user), "dbroles": [user.role],
            "created_at": user.created_at.isoformat()}


@router.get("/account/channels")
def account_channels(p: UserDep, db: SessionDep) -> dict[str, Any]:
    owned = channels.visible_channels(db, p, owned_only=True)
    return {"total_count": len(owned), "items": [channels.channel_json(db, c) for c in owned]}


@router.get("/account/scopes")
def scopes(_: UserDep) -> dict[str, Any]:
    return {"scopes": list(ALL_SCOPES)}


@router.get("/account/token-info")
def token_info(p: UserDep, db: SessionDep) -> Any:
    if p.token_id is None:
        return Response(status_code=204)
    from taipan.db.models import Token

    token = db.get(Token, p.token_id)
    if token is None:
        raise Unauthenticated("The token is not valid", "Log in again", code="invalid_token")
    return _token_json(token)


@router.get("/account/tokens")
def list_tokens(p: UserDep, db: SessionDep) -> dict[str, Any]:
    items = [_token_json(t) for t in accounts.list_tokens(db, p)]
    return {"total_count": len(items), "items": items}


@router.post("/account/tokens")
def create_token(body: TokenBody, p: UserDep, db: SessionDep, rt: RuntimeDep) -> dict[str, Any]:
    secret, token = accounts.create_token(db, p, body.name, body.scopes, body.expires_at,
                                          rt.settings.auth, body.resources)
    db.commit()
    return {"token": secret, "id": token.id, **{k: v for k, v in _token_json(token).items() if k != "id"}}


@router.put("/account/tokens/{token_id}")
def rotate_token(token_id: str, p: UserDep, db: SessionDep, request: Request) -> dict[str, Any]:
    secret, token = accounts.rotate_token(db, p, token_id)
    db.commit()
    return {"token": secret, "id": token.id}


@router.delete("/account/tokens/{token_id}", status_code=204)
def delete_token(token_id: str, p: UserDep, db: SessionDep) -> Response:
    accounts.delete_token(db, p, token_id)
    db.commit()
    return Response(status_code=204)
