"""/api/auth/login, /api/logout and /api/account/*: sessions, the caller's account, scopes and tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from taipan.db.models import Token
from taipan.domain.permissions import ALL_SCOPES, offered_scopes
from taipan.errors import Unauthenticated
from taipan.services import accounts, channels, tokens
from taipan.web.api.answers import ChannelPage, Page, doc
from taipan.web.deps import RuntimeDep, SessionDep, UserDep, client_address, credentials

router = APIRouter(tags=["account"])


class LoginBody(BaseModel):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1000)


class TokenBody(BaseModel):
    # The schema says what the service checks (a name that is not blank, known scopes, an ISO date
    # or date-time); the service answers a breach with a 400 and a hint, as it always did.
    model_config = ConfigDict(json_schema_extra={"required": ["name"]})

    name: str = Field("", max_length=200, json_schema_extra={"minLength": 1, "pattern": r"\S"})
    expires_at: str | None = Field(None, max_length=64, description=(
        "The end of that day (UTC) for a date such as 2027-01-31, or a date-time; in the future, within "
        "the server's maximum token lifetime. Default (null or empty): 30 days, never past the calling "
        "token's expiry"),
        json_schema_extra={"anyOf": [{"type": "string", "format": "date", "maxLength": 10},
                                     {"type": "string", "format": "date-time", "maxLength": 64},
                                     {"type": "string", "maxLength": 0}, {"type": "null"}]})
    scopes: list[str] | None = Field(None, max_length=100, description=(
        "Default: every scope the caller may pass on (GET /api/account/scopes)"),
        json_schema_extra={"items": {"type": "string", "enum": sorted(set(ALL_SCOPES) | {"repo"})}})
    resources: list[Any] | None = Field(None, max_length=100)


class RefreshBody(BaseModel):
    # conda-repo-cli sends {}: a refresh, which leaves the secrets other clients hold valid.
    revoke_previous: bool = Field(False, description="also revoke every earlier secret of the token")


def _token_json(t: Token) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "type": t.kind, "scopes": t.scopes, "resources": t.resources,
            "metadata": {}, "created_at": t.created_at.isoformat(), "expires_at": t.expires_at.isoformat(),
            "refreshed_at": t.refreshed_at.isoformat() if t.refreshed_at else None}


@router.post("/auth/login")
def login(body: LoginBody, db: SessionDep, rt: RuntimeDep, request: Request) -> dict[str, Any]:
    secret, user = accounts.login(db, body.username, body.password, rt.settings.auth, client_address(request))
    db.commit()
    return {"token": secret, "refresh_token": secret, "username": user.username, "roles": [user.role],
            "expires_in": rt.settings.auth.session_hours * 3600}


@router.post("/logout", status_code=204)
def logout(p: UserDep, db: SessionDep, request: Request) -> Response:
    """Revoke the credential this request carries: a session ends; a token loses this secret (a
    client holding an earlier secret of a refreshed token stays signed in). Needs no other scope."""
    kind, value = credentials(request)
    if kind == "token" and value:
        tokens.revoke_secret(db, value)
        db.commit()
    return Response(status_code=204)


@router.get("/account")
@router.get("/account/me")
def account(p: UserDep, db: SessionDep) -> dict[str, Any]:
    user = accounts.get_user(db, p.username or "")
    return {"user_id": user.id, "username": user.username, "roles": [user.role],
            "default_channel_name": accounts.default_channel_name(db, user), "dbroles": [user.role],
            "created_at": user.created_at.isoformat(),
            # What this credential may do: every scope for a password session, a token's own otherwise.
            "permissions": offered_scopes(p), "credential": p.kind,
            "expires_at": p.expires_at.isoformat() if p.expires_at else None}


@router.get("/account/channels", responses=doc(200, ChannelPage))
def account_channels(p: UserDep, db: SessionDep) -> dict[str, Any]:
    owned = channels.visible_channels(db, p, owned_only=True)
    return {"total_count": len(owned), "items": [channels.channel_json(db, c) for c in owned]}


@router.get("/account/scopes")
def scopes(p: UserDep) -> dict[str, Any]:
    """The scopes the caller may put on a new token: never an admin's to a non-admin, never more
    than the calling token holds."""
    return {"scopes": offered_scopes(p)}


@router.get("/account/token-info", responses={204: {"description": "The credential is a login session, not a token"}})
def token_info(p: UserDep, db: SessionDep) -> Any:
    if p.token_id is None:
        return Response(status_code=204)
    token = db.get(Token, p.token_id)
    if token is None:
        raise Unauthenticated("The token is not valid", "Log in again", code="invalid_token")
    return _token_json(token)


@router.get("/account/tokens", responses=doc(200, Page))
def list_tokens(p: UserDep, db: SessionDep) -> dict[str, Any]:
    items = [_token_json(t) for t in tokens.list_tokens(db, p)]
    return {"total_count": len(items), "items": items}


@router.post("/account/tokens")
def create_token(body: TokenBody, p: UserDep, db: SessionDep, rt: RuntimeDep) -> dict[str, Any]:
    secret, token = tokens.create_token(db, p, body.name, body.scopes, body.expires_at,
                                        rt.settings.auth, body.resources)
    db.commit()
    return {"token": secret, "id": token.id, **{k: v for k, v in _token_json(token).items() if k != "id"}}


@router.put("/account/tokens/{token_id}")
def refresh_token(token_id: str, p: UserDep, db: SessionDep, rt: RuntimeDep,
                  body: RefreshBody | None = None) -> dict[str, Any]:
    secret, token = tokens.refresh_token(db, p, token_id, rt.settings.auth,
                                         revoke_previous=bool(body and body.revoke_previous))
    db.commit()
    return {"token": secret, "id": token.id, "expires_at": token.expires_at.isoformat()}


@router.delete("/account/tokens/{token_id}", status_code=204)
def delete_token(token_id: str, p: UserDep, db: SessionDep) -> Response:
    tokens.delete_token(db, p, token_id)
    db.commit()
    return Response(status_code=204)
