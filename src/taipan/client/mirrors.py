"""Mirror endpoints of the management API (wire protocol doc §2.6), as functions over TaipanClient."""

from __future__ import annotations

from typing import Any

from taipan.client.api import TaipanClient, channel_path_url

Json = dict[str, Any]


def _json(client: TaipanClient, method: str, path: str, **kw: Any) -> Any:
    resp = client.request(method, path, **kw)
    return resp.json() if resp.status_code != 204 and resp.content else None


def list_mirrors(client: TaipanClient, channel: str) -> Json:
    return _json(client, "GET", channel_path_url(channel) + "/mirrors")


def list_all_mirrors(client: TaipanClient, offset: int = 0, limit: int = 100,
                     sort: str = "mirror_name") -> Json:
    # conda-repo-cli sends paging in a GET body; we send query parameters, which the server reads too.
    return _json(client, "GET", "/mirrors", params={"offset": offset, "limit": limit, "sort": sort})


def get_mirror(client: TaipanClient, channel: str, mirror_id: str) -> Json:
    return _json(client, "GET", f"{channel_path_url(channel)}/mirrors/{mirror_id}")


def create_mirror(client: TaipanClient, channel: str, body: Json) -> Json:
    return _json(client, "POST", channel_path_url(channel) + "/mirrors", json=body)


def update_mirror(client: TaipanClient, channel: str, mirror_id: str, body: Json) -> Json:
    return _json(client, "PUT", f"{channel_path_url(channel)}/mirrors/{mirror_id}", json=body)


def delete_mirror(client: TaipanClient, channel: str, mirror_id: str) -> None:
    client.request("DELETE", f"{channel_path_url(channel)}/mirrors/{mirror_id}")


def stop_mirror(client: TaipanClient, channel: str, mirror_id: str) -> Json:
    return _json(client, "POST", f"{channel_path_url(channel)}/mirrors/{mirror_id}/stop_mirror_sync")
