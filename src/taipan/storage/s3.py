"""Blob store on an S3-compatible object store: one object per blob, keyed ``<prefix><aa>/<sha256>``.

Uploads are still spooled and hashed on local disk (``tempdir``) and then sent with a multipart
upload; downloads are redirected to presigned URLs by the serving layer (``presigned_url``), so the
bytes travel from the object store to the client directly. Objects are immutable: a blob is put once.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from taipan.storage.base import StoredItem

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


class S3BlobStore:
    def __init__(self, *, bucket: str, scratch: Path, prefix: str = "blobs/", endpoint_url: str | None = None,
                 region: str | None = None, access_key: str | None = None, secret_key: str | None = None,
                 presign_seconds: int = 300, create_bucket: bool = False) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self.presign_seconds = presign_seconds
        self._scratch = Path(scratch)
        self._scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.client: Any = boto3.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None,
            aws_access_key_id=access_key or None, aws_secret_access_key=secret_key or None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, signature_version="s3v4",
                          s3={"addressing_style": "path"}))
        if create_bucket and not self._bucket_exists():
            self.client.create_bucket(Bucket=bucket)

    def _bucket_exists(self) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return True
        except ClientError:
            return False

    def _key(self, sha256: str) -> str:
        if not _SHA_RE.match(sha256):
            raise ValueError(f"not a sha256 digest: {sha256!r}")
        return f"{self.prefix}{sha256[:2]}/{sha256}"

    def tempdir(self) -> Path:
        return self._scratch

    def put_file(self, sha256: str, src: Path, *, move: bool = False) -> None:
        key = self._key(sha256)
        if not self.touch(sha256):
            self.client.upload_file(str(src), self.bucket, key, ExtraArgs={
                "ContentType": "application/octet-stream", "Metadata": {"touched": f"{time.time():.3f}"}})
        if move:
            try:
                os.unlink(src)
            except FileNotFoundError:
                pass

    def exists(self, sha256: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def open(self, sha256: str) -> BinaryIO:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(sha256))["Body"]
        return body  # type: ignore[no-any-return]  # a readable, closable stream

    def local_path(self, sha256: str) -> Path | None:
        self._key(sha256)
        return None

    def size(self, sha256: str) -> int:
        return int(self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))["ContentLength"])

    def iter_bytes(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= start:
            return
        rng = f"bytes={start}-" + ("" if end is None else str(end - 1))
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(sha256), Range=rng)["Body"]
        try:
            while chunk := body.read(CHUNK):
                yield chunk
        finally:
            body.close()

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(sha256))

    def presigned_url(self, sha256: str, *, filename: str | None = None) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(sha256)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return str(self.client.generate_presigned_url("get_object", Params=params,
                                                      ExpiresIn=self.presign_seconds))

    def iter_digests(self) -> Iterator[str]:
        """Every stored blob's sha256 (for housekeeping)."""
        for item in self.iter_blobs():
            yield item.name

    # --- housekeeping (the blob cleanup) ---------------------------------------------------------
    # Object stores set LastModified themselves; "when last used" is kept in the object's metadata
    # (``touched``), which ``touch`` rewrites with a copy of the object onto itself.

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    @staticmethod
    def _touched(head: dict[str, Any]) -> float:
        meta = head.get("Metadata") or {}
        try:
            return float(meta["touched"])
        except (KeyError, ValueError):
            return float(head["LastModified"].timestamp())

    def _set_touched(self, key: str, when: float) -> None:
        self.client.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                                Metadata={"touched": f"{when:.3f}"}, MetadataDirective="REPLACE",
                                ContentType="application/octet-stream")

    def touch(self, sha256: str) -> bool:
        key = self._key(sha256)
        if self._head(key) is None:
            return False
        self._set_touched(key, time.time())
        return True

    def stat(self, sha256: str) -> StoredItem | None:
        head = self._head(self._key(sha256))
        return None if head is None else StoredItem(sha256, int(head["ContentLength"]), self._touched(head))

    def iter_blobs(self) -> Iterator[StoredItem]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                if _SHA_RE.match(name) and obj["Key"] == self._key(name):
                    yield StoredItem(name, int(obj["Size"]), float(obj["LastModified"].timestamp()))

    def scratch_files(self) -> Iterator[StoredItem]:
        for entry in os.scandir(self._scratch):
            try:
                if entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    yield StoredItem(entry.name, st.st_size, st.st_mtime)
            except FileNotFoundError:
                continue

    def remove_scratch(self, name: str, older_than: float) -> bool:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"not a scratch file name: {name!r}")
        path = self._scratch / name
        try:
            if path.stat().st_mtime >= older_than:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def reclaim(self, sha256: str, older_than: float, unused: Callable[[], bool]) -> bool:
        key = self._key(sha256)
        head = self._head(key)
        if head is None or self._touched(head) >= older_than:
            return False
        # Out of reach first: a copy under a holding key, then the blob's own key goes; a writer
        # that looks from now on finds it missing and stores it again.
        hold = f"{self.prefix}held/{sha256}-{uuid.uuid4().hex[:8]}"
        self.client.copy_object(Bucket=self.bucket, Key=hold, CopySource={"Bucket": self.bucket, "Key": key})
        self.client.delete_object(Bucket=self.bucket, Key=key)
        try:
            keep = not unused() or self._head(key) is not None
        except BaseException:
            self._put_back(hold, key)
            raise
        if keep:
            self._put_back(hold, key)
            return False
        self.client.delete_object(Bucket=self.bucket, Key=hold)
        return True

    def _put_back(self, hold: str, key: str) -> None:
        if self._head(key) is None:
            self.client.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": hold})
        self.client.delete_object(Bucket=self.bucket, Key=hold)

    def age_for_tests(self, sha256: str, when: float) -> None:
        """Set when a blob was last used (object stores do not let clients set LastModified)."""
        self._set_touched(self._key(sha256), when)
