"""A mirror run's replacement of a file in a frozen channel (``indexing.defer``), on SQLite and
PostgreSQL: the row keeps its values while frozen (the index lists them), the new bytes count as
referenced for blob cleanup, and the unfreeze writes the new values and publishes them; a file removed
meanwhile leaves nothing to write."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select
from test_core_services import admin_principal

from taipan.db.models import File, HeldChange
from taipan.services import blob_cleanup, channels, indexing, uploads
from taipan.services.indexing import forget_held


def _listed(rt, channel_id: str, subdir: str) -> dict[str, dict]:
    rt.indexer.notify(channel_id, {subdir})
    pub = rt.indexer.publication(channel_id, subdir)
    data = json.loads(pub.file("repodata.json"))
    return {**data["packages"], **data["packages.conda"]}


def test_a_replacement_waits_for_the_unfreeze(runtime, package_builder, tmp_path) -> None:
    rt = runtime
    p = admin_principal(rt)
    pkgs = [package_builder("kept", "1.0", "noarch"), package_builder("gone", "1.0", "noarch")]
    with rt.sessions() as db:
        ch = channels.create_channel(db, p, "icebox")
        db.commit()
        for pkg in pkgs:
            with open(pkg, "rb") as fh:
                spooled = uploads.spool(fh, rt.blobs.tempdir(), 10**9)
                try:
                    uploads.upload(db, rt.blobs, p, ch, spooled, pkg.name)
                    db.commit()
                finally:
                    spooled.discard()
        channels.update_channel(db, p, ch, {"frozen": True})
        db.commit()
        cid = ch.id
    before = _listed(rt, cid, "noarch")
    kept, gone = (before[pkg.name] for pkg in pkgs)

    # The mirror run's new bytes and records (the same file names).
    new_bytes = b"new bytes of kept"
    new_sha = hashlib.sha256(new_bytes).hexdigest()
    blob = tmp_path / "blob"
    blob.write_bytes(new_bytes)
    rt.blobs.put_file(new_sha, blob)
    with rt.sessions() as db:
        rows = {f.filename: f for f in db.scalars(select(File).where(File.channel_id == cid))}
        replaced = [{"id": rows[pkg.name].id, "subdir": "noarch", "filename": pkg.name, "sha256": new_sha,
                     "md5": "0" * 32, "size": len(new_bytes), "state": "active", "name": rows[pkg.name].name,
                     "record": json.dumps({**json.loads(rows[pkg.name].record), "sha256": new_sha,
                                           "size": len(new_bytes)}), "channel_id": cid} for pkg in pkgs]
        indexing.lock_channel(db, cid)
        assert indexing.defer(db, cid, replaced) == []  # both were published: both wait
        db.commit()
        # Served as they were; the new blob is referenced.
        assert {f.filename: f.sha256 for f in db.scalars(select(File).where(File.channel_id == cid))} == {
            pkgs[0].name: kept["sha256"], pkgs[1].name: gone["sha256"]}
        assert new_sha in blob_cleanup.referenced(db, [new_sha], set())
        # The mirror removes the second file meanwhile (logged at once, nothing of it held).
        indexing.lock_channel(db, cid)
        db.delete(db.get(File, rows[pkgs[1].name].id))
        indexing.log_changes(db, cid, [("noarch", pkgs[1].name)], even_if_frozen=True)
        forget_held(db, cid, [("noarch", pkgs[1].name)])
        db.commit()
    assert _listed(rt, cid, "noarch") == {pkgs[0].name: kept}

    with rt.sessions() as db:
        channels.update_channel(db, p, channels.get_channel(db, "icebox"), {"frozen": False})
        db.commit()
        assert db.scalars(select(HeldChange).where(HeldChange.channel_id == cid)).all() == []
        row = db.scalar(select(File).where(File.channel_id == cid))
        assert (row.filename, row.sha256, row.size) == (pkgs[0].name, new_sha, len(new_bytes))
        assert new_sha in blob_cleanup.referenced(db, [new_sha], set())
    after = _listed(rt, cid, "noarch")
    assert list(after) == [pkgs[0].name] and after[pkgs[0].name]["sha256"] == new_sha
