"""Blob store on an S3-compatible object store: one object per blob, keyed ``<prefix><aa>/<sha256>``.

Uploads are still spooled and hashed on local disk (``tempdir``) and then sent with a multipart
upload; downloads are redirected to presigned URLs by the serving layer (``presigned_url``), so the
bytes travel from the object store to the client directly. Objects are immutable: a blob is put once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

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
        if not self.exists(sha256):
            self.client.upload_file(str(src), self.bucket, key,
                                    ExtraArgs={"ContentType": "application/octet-stream"})
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
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                if _SHA_RE.match(name):
                    yield name
