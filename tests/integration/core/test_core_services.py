"""Services against a real database (SQLite and PostgreSQL) and a real blob store."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from taipan.domain.permissions import Principal
from taipan.errors import Conflict, Forbidden, TooManyRequests, Unauthenticated
from taipan.services import accounts, artifacts, channels, tokens, uploads
from taipan.settings import AuthSettings


def admin_principal(rt) -> Principal:
    with rt.sessions() as db:
        accounts.bootstrap_admin(db, "admin", "admin-password-1")
        db.commit()
        secret, _ = accounts.login(db, "admin", "admin-password-1", AuthSettings())
        db.commit()
        return tokens.principal_for_secret(db, secret)


def put(rt, p: Principal, channel_path: str, pkg: Path):
    with rt.sessions() as db, open(pkg, "rb") as fh:
        ch = channels.get_channel(db, channel_path)
        spooled = uploads.spool(fh, rt.blobs.tempdir(), 10**9)
        try:
            row = uploads.upload(db, rt.blobs, p, ch, spooled, pkg.name)
            db.commit()
        finally:
            spooled.discard()
        rt.indexer.notify(ch.id, {row.subdir})
        return ch.id, row.subdir


def test_accounts_tokens_and_throttle(runtime):
    p = admin_principal(runtime)
    cfg = AuthSettings()
    with runtime.sessions() as db:
        secret, token = tokens.create_token(db, p, "ci", ["artifact:download", "token:manage"], None, cfg)
        db.commit()
        got = tokens.principal_for_secret(db, secret)
        assert got.scopes == {"artifact:download", "token:manage"} and got.username == "admin"
        # a scoped token cannot mint a broader one
        with pytest.raises(Forbidden):
            tokens.create_token(db, got, "wider", ["artifact:create"], None, cfg)
        accounts.create_user(db, "bob", "bob-password")
        db.commit()
        # bob's own channel comes with his first login, not with the account
        assert accounts.default_channel_name(db, accounts.get_user(db, "bob")) is None
        accounts.login(db, "bob", "bob-password", cfg)
        db.commit()
        assert accounts.default_channel_name(db, accounts.get_user(db, "bob")) == "bob"
        with pytest.raises(Conflict):
            accounts.create_user(db, "bob", "bob-password")
        db.rollback()
        for _ in range(3):
            with pytest.raises(Unauthenticated):
                accounts.login(db, "bob", "nope-nope", cfg)
        with pytest.raises(TooManyRequests):
            accounts.login(db, "bob", "bob-password", cfg)
        with pytest.raises(Conflict):
            accounts.delete_user(db, "admin")  # the last admin stays


def test_incremental_index_and_bulk(runtime, conda_packages):
    p = admin_principal(runtime)
    with runtime.sessions() as db:
        channels.create_channel(db, p, "snakes")
        channels.create_channel(db, p, "lua", parent_path="snakes")
        db.commit()
    cid, _ = put(runtime, p, "snakes", conda_packages["hello"])
    first = runtime.indexer.publication(cid, "noarch")
    assert list(json.loads(first.file("repodata.json"))["packages.conda"]) == ["hello-1.0-0.conda"]
    put(runtime, p, "snakes", conda_packages["hello-1.1"])
    second = runtime.indexer.publication(cid, "noarch")
    assert second.etag("repodata-json") != first.etag("repodata-json")
    assert set(json.loads(second.file("repodata.json"))["packages.conda"]) == {"hello-1.0-0.conda", "hello-1.1-0.conda"}
    # the untouched subdir is not rebuilt: same publication object
    linux = runtime.indexer.publication(cid, "linux-64")
    put(runtime, p, "snakes", conda_packages["world"])
    assert runtime.indexer.publication(cid, "noarch") is second
    assert runtime.indexer.publication(cid, "linux-64") is not linux
    with runtime.sessions() as db:
        ch = channels.get_channel(db, "snakes")
        changed = artifacts.bulk(db, p, ch, "copy", [{"name": "hello", "family": "conda"}], "snakes", "lua")
        db.commit()
    sub_id = next(k for k in changed if k != cid)
    runtime.indexer.notify(sub_id, {"noarch"})
    sub = json.loads(runtime.indexer.publication(sub_id, "noarch").file("repodata.json"))
    assert sub["packages.conda"] == json.loads(second.file("repodata.json"))["packages.conda"]


def test_other_process_writes_are_polled(runtime, conda_packages):
    """A second Indexer (as in another worker process) sees writes after its poll interval."""
    from taipan.services.indexing import Indexer

    p = admin_principal(runtime)
    with runtime.sessions() as db:
        channels.create_channel(db, p, "polled")
        db.commit()
    other = Indexer(runtime.sessions, blobs=runtime.blobs, poll_interval=0.0)
    cid, _ = put(runtime, p, "polled", conda_packages["hello"])
    assert "hello-1.0-0.conda" in json.loads(other.publication(cid, "noarch").file("repodata.json"))["packages.conda"]
    put(runtime, p, "polled", conda_packages["hello-1.1"])
    assert "hello-1.1-0.conda" in json.loads(other.publication(cid, "noarch").file("repodata.json"))["packages.conda"]


def test_a_large_publication_is_served_at_once_and_shared_in_the_background(runtime, package_builder):
    """Above its size threshold a publication is served by the building process before its shards
    and compressed files are stored; another process adopts it only once all are stored."""
    import time

    import msgpack
    import zstandard

    from taipan.db.models import IndexPublication
    from taipan.services.indexing import Indexer

    p = admin_principal(runtime)
    with runtime.sessions() as db:
        channels.create_channel(db, p, "big")
        db.commit()
    builder = Indexer(runtime.sessions, blobs=runtime.blobs, poll_interval=0.0, background_above=0)
    cid, _ = put(runtime, p, "big", package_builder("alpha", "1.0", "noarch"))
    pub = builder.publication(cid, "noarch")
    zst = zstandard.ZstdDecompressor().decompressobj().decompress(pub.file("repodata.json.zst"))
    assert json.loads(zst) == json.loads(pub.file("repodata.json"))
    listing = msgpack.unpackb(zstandard.ZstdDecompressor().decompressobj().decompress(
        pub.file("repodata_shards.msgpack.zst")))
    shard = pub.file(f"shards/{listing['shards']['alpha'].hex()}.msgpack.zst")
    assert "alpha-1.0-0.conda" in msgpack.unpackb(zstandard.ZstdDecompressor().decompressobj().decompress(shard))[
        "packages.conda"]
    deadline = time.monotonic() + 30
    while True:
        with runtime.sessions() as db:
            row = db.get(IndexPublication, (cid, "noarch"))
            if row is not None and row.seq >= pub.seq:
                break
        assert time.monotonic() < deadline, "the background share never moved the pointer"
        time.sleep(0.05)
    other = Indexer(runtime.sessions, blobs=runtime.blobs, poll_interval=0.0)
    adopted = other.publication(cid, "noarch")
    assert adopted.adopted and other.builds == 0
    assert adopted.file("repodata.json") == pub.file("repodata.json")
    assert adopted.file(f"shards/{listing['shards']['alpha'].hex()}.msgpack.zst") == shard


def test_concurrent_uploads_all_land_in_the_index(runtime, package_builder):
    p = admin_principal(runtime)
    with runtime.sessions() as db:
        channels.create_channel(db, p, "burst")
        db.commit()
    pkgs = [package_builder(f"p{i}", "1.0", "noarch") for i in range(12)]
    errors: list[BaseException] = []

    def work(chunk):
        try:
            for pkg in chunk:
                put(runtime, p, "burst", pkg)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(pkgs[i::3],)) for i in range(3)]
    reader = runtime.indexer
    for t in threads:
        t.start()
    with runtime.sessions() as db:
        cid = channels.get_channel(db, "burst").id
    while any(t.is_alive() for t in threads):
        reader.publication(cid, "noarch")  # read while writers commit
    for t in threads:
        t.join()
    assert not errors
    reader.notify(cid, {"noarch"})
    assert len(json.loads(reader.publication(cid, "noarch").file("repodata.json"))["packages.conda"]) == 12


def test_segmented_bodies_joined_or_streamed_are_the_same_bytes(runtime, package_builder, monkeypatch):
    """A segmented repodata.json (and its gzip coding) is joined in memory up to the indexer's
    memory limit and streamed in pieces beyond: both give the bytes of the whole file."""
    import gzip

    from taipan.domain.families.base import Segmented
    from taipan.services import publication as publication_module
    from taipan.services.indexing import Indexer

    p = admin_principal(runtime)
    with runtime.sessions() as db:
        channels.create_channel(db, p, "joined")
        db.commit()
    for name in ("alpha", "beta", "gamma"):
        cid, _ = put(runtime, p, "joined", package_builder(name, "1.0", "noarch"))
    joined = Indexer(runtime.sessions, blobs=runtime.blobs, poll_interval=0.0).publication(cid, "noarch")
    plain, gz = joined.encoded("repodata.json", None), joined.encoded("repodata.json", "gzip")
    assert isinstance(plain, bytes) and isinstance(gz, bytes)
    assert json.loads(plain)["packages.conda"].keys() == {"alpha-1.0-0.conda", "beta-1.0-0.conda",
                                                          "gamma-1.0-0.conda"}
    assert gzip.decompress(gz) == plain
    monkeypatch.setattr(publication_module, "STREAM_PIECE", 64)
    streamed = Indexer(runtime.sessions, blobs=runtime.blobs, poll_interval=0.0,
                       memory_limit=0).publication(cid, "noarch")
    for coding, expected in ((None, plain), ("gzip", gz)):
        body = streamed.encoded("repodata.json", coding)
        assert isinstance(body, Segmented) and not streamed.is_ready("repodata.json", coding)
        pieces = list(streamed.stream(body))
        assert len(pieces) > 1 and b"".join(pieces) == expected
    # A compressed coding is joined up to COMPRESSED_FACTOR times the limit (what clients ask for:
    # streamed from its parts, a 1M-record gzip took 3.3 times the CPU per answer); identity is not.
    limit = len(plain) - 1
    assert len(gz) <= limit * publication_module.COMPRESSED_FACTOR
    mixed = Indexer(runtime.sessions, blobs=runtime.blobs, poll_interval=0.0,
                    memory_limit=limit).publication(cid, "noarch")
    assert isinstance(mixed.encoded("repodata.json", None), Segmented)
    assert mixed.encoded("repodata.json", "gzip") == gz and mixed.is_ready("repodata.json", "gzip")


def test_a_commit_in_another_process_of_the_machine_is_seen_at_once(runtime, conda_packages):
    """A second Indexer sharing the home's change bell (another worker) serves a committed upload at
    once, with an hour's poll interval; one without the bell (another machine) keeps its previous
    publication until its poll. A rolled-back write rings nothing."""
    from taipan.services.indexing import Indexer, log_changes
    from taipan.storage.bell import silent_bell

    p = admin_principal(runtime)
    with runtime.sessions() as db:
        channels.create_channel(db, p, "rung")
        db.commit()
    cid, _ = put(runtime, p, "rung", conda_packages["hello"])
    near = Indexer(runtime.sessions, blobs=runtime.blobs, poll_interval=3600, bell=runtime.indexer.bell)
    far = Indexer(runtime.sessions, blobs=runtime.blobs, poll_interval=3600, bell=silent_bell())

    def files(ix: Indexer) -> dict:
        return json.loads(ix.publication(cid, "noarch").file("repodata.json"))["packages.conda"]

    def document(ix: Indexer) -> bytes:
        return ix.documents.publication(cid, "names", frozenset({"noarch"}), "text/plain",
                                        lambda: ",".join(sorted(files(ix))).encode()).file("names")

    for ix in (near, far):
        assert list(files(ix)) == ["hello-1.0-0.conda"] and document(ix) == b"hello-1.0-0.conda"
        assert ix.peek(cid, "noarch") is not None and ix.documents.peek(cid, "names") is not None
    rung = runtime.indexer.bell.seen(cid)
    with runtime.sessions() as db:
        log_changes(db, cid, [("noarch", "hello-9-0.conda")])
        db.rollback()
    assert runtime.indexer.bell.seen(cid) == rung
    assert near.peek(cid, "noarch") is not None

    put(runtime, p, "rung", conda_packages["hello-1.1"])
    assert near.peek(cid, "noarch") is None and near.documents.peek(cid, "names") is None
    assert "hello-1.1-0.conda" in files(near)
    assert document(near) == b"hello-1.0-0.conda,hello-1.1-0.conda"
    assert near.peek(cid, "noarch") is not None  # current again until the next ring
    assert far.peek(cid, "noarch") is not None and "hello-1.1-0.conda" not in files(far)
    assert document(far) == b"hello-1.0-0.conda"


def test_a_channel_cache_finds_a_channel_once_its_path_was_created(runtime):
    """The channel cache keeps a look-up that found nothing (for 1 s) until the bell slot of the path
    rings: creating a channel or subchannel, a user's own channel at the first login and a rename
    ring it after their commit (another process shares the slots: ``test_core_change_bell``); a
    rolled-back creation rings nothing, and a deleted channel is gone at once."""
    from taipan.web.repo.common import ChannelCache

    p = admin_principal(runtime)
    cache = ChannelCache(runtime.indexer.bell)

    def missing(*paths: str) -> None:
        for path in paths:
            assert cache.get(runtime, path) is None and cache.peek(path) == (None,)

    missing("fresh", "fresh/sub", "renamed", "carol")
    with runtime.sessions() as db:
        channels.create_channel(db, p, "fresh")
        db.rollback()
    assert cache.peek("fresh") == (None,)
    with runtime.sessions() as db:
        channels.create_channel(db, p, "fresh")
        db.commit()
    assert cache.peek("fresh") is None and cache.get(runtime, "fresh").path == "fresh"
    with runtime.sessions() as db:
        channels.create_channel(db, p, "sub", parent_path="fresh")
        db.commit()
    assert cache.peek("fresh/sub") is None and cache.get(runtime, "fresh/sub").path == "fresh/sub"

    missing("renamed/sub")
    with runtime.sessions() as db:
        channels.update_channel(db, p, channels.get_channel(db, "fresh"), {"name": "renamed"})
        db.commit()
    assert cache.get(runtime, "renamed").path == "renamed"
    assert cache.get(runtime, "renamed/sub").path == "renamed/sub"
    missing("fresh", "fresh/sub")

    with runtime.sessions() as db:
        accounts.create_user(db, "carol", "carol-password")
        db.commit()
        accounts.login(db, "carol", "carol-password", AuthSettings())
        db.commit()
    assert cache.get(runtime, "carol").path == "carol"

    with runtime.sessions() as db:
        channels.delete_channel(db, p, channels.get_channel(db, "renamed"))
        db.commit()
    missing("renamed", "renamed/sub")
