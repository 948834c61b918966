"""The shapes of the API's answers, for the published schema only (``responses={...: {"model": ...}}``).

Handlers build their answers as dicts (services' ``*_json``); these models say what those dicts hold,
so that schemathesis checks every answer against them. They never filter or validate an answer at
run time. A field a client may rely on is required; later fields may be added freely.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChannelOut(_Open):
    id: str
    name: str
    path: str
    description: str
    privacy: str
    effective_privacy: str
    frozen: bool
    artifact_count: int
    download_count: int
    subchannel_count: int
    mirror_count: int
    filters: dict[str, Any]
    owners: list[str]
    created: str
    updated: str
    parent: str | None = None


class ChannelPage(_Open):
    total_count: int
    items: list[ChannelOut]


class Page(_Open):
    total_count: int
    items: list[dict[str, Any]]


def doc(status: int, model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route answering ``status`` with ``model``."""
    return {status: {"model": model}}
