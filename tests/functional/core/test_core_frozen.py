"""What is written to a frozen channel is served only once it is published, on unfreeze: until then
its URL answers the 404 of a file the channel does not have (conda, Python and its PEP 658 metadata,
R, one-file documents; GET, HEAD and Range; anonymous or the channel's admin; the in-memory fast path
included), and so does its SBOM. The files the channel had at the freeze are served as before."""

from __future__ import annotations

import json

import httpx

NOTEBOOK = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}


def test_files_written_while_frozen_are_served_once_published(server_factory, package_builder, python_dists,
                                                              r_packages) -> None:
    server = server_factory()
    admin = server.client(server.admin_token())
    ch, base = "glacier", f"{server.api}/repo/glacier"
    kept = package_builder("kept", "1.0", "linux-64")
    icy = package_builder("icy", "1.0", "linux-64")
    wheel, tpdep = python_dists["hello-wheel"], r_packages["tpdep"]

    def upload(name: str, data: bytes, filetype: str = "") -> None:
        r = admin.post(f"/channels/{ch}/artifacts", files={"content": (name, data)},
                       data={"filetype": filetype} if filetype else {})
        assert r.status_code == 201, r.text

    assert admin.post("/channels", json={"name": ch}).status_code == 201
    upload(kept.name, kept.read_bytes())
    assert admin.put(f"/channels/{ch}", json={"frozen": True}).status_code == 200
    upload(icy.name, icy.read_bytes())
    upload(wheel.name, wheel.read_bytes(), "bdist_wheel")
    upload(tpdep.name, tpdep.read_bytes(), "cran_source_package")
    upload("held.ipynb", json.dumps(NOTEBOOK).encode())

    held: dict[str, bytes] = {f"linux-64/{icy.name}": icy.read_bytes(),
                              f"simple/pyhello/{wheel.name}": wheel.read_bytes(),
                              f"src/contrib/{tpdep.name}": tpdep.read_bytes(),
                              "jupyter/held.ipynb": json.dumps(NOTEBOOK).encode()}
    missing = httpx.get(f"{base}/linux-64/nothere-1.0-0.conda")
    assert missing.status_code == 404

    def like_missing(r: httpx.Response, path: str) -> bool:
        if r.status_code != 404:
            return False
        return r.request.method == "HEAD" or r.json()["code"] in {"file_not_found", "not_found"}

    with httpx.Client() as anon, server.client(server.admin_token()) as owner:
        for _ in range(3):  # a lookup, then (were it found) the fast path
            for client, prefix in ((anon, base), (owner, f"/repo/{ch}")):
                good = client.get(f"{prefix}/linux-64/{kept.name}")
                assert good.status_code == 200 and good.content == kept.read_bytes()
                for path in held:
                    for r in (client.get(f"{prefix}/{path}"), client.head(f"{prefix}/{path}"),
                              client.get(f"{prefix}/{path}", headers={"Range": "bytes=0-9"})):
                        assert like_missing(r, path), (path, r.status_code, r.text)
                    sbom = client.get(f"{prefix}/{path}", params={"sbom": "download"})
                    assert sbom.status_code == 404, (path, sbom.text)
                assert client.get(f"{prefix}/{icy.name}", params={"sbom": "download"}).status_code == 404
                meta = client.get(f"{prefix}/simple/pyhello/{wheel.name}.metadata")
                assert meta.status_code == 404, meta.text
                assert client.get(f"{prefix}/linux-64/{kept.name}", params={"sbom": "download"}).status_code == 200

    assert admin.put(f"/channels/{ch}", json={"frozen": False}).status_code == 200
    with httpx.Client() as anon:
        for path, data in held.items():
            r = anon.get(f"{base}/{path}")
            assert r.status_code == 200 and r.content == data, (path, r.status_code, r.text)
        assert anon.get(f"{base}/simple/pyhello/{wheel.name}.metadata").status_code == 200
        assert anon.get(f"{base}/linux-64/{icy.name}", params={"sbom": "download"}).status_code == 200
    admin.close()
