"""Composition root: builds the engine, blob store, indexer and recorders from Settings.

This is the only module that names concrete backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from taipan.db.engine import make_engine, make_sessionmaker
from taipan.services.downloads import DownloadRecorder
from taipan.services.indexing import Indexer
from taipan.settings import Settings
from taipan.storage.base import BlobStore
from taipan.storage.filesystem import FilesystemBlobStore


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    indexer: Indexer
    downloads: DownloadRecorder
    extras: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        self.downloads.start()

    def close(self) -> None:
        self.downloads.stop()
        self.engine.dispose()


def build_runtime(settings: Settings | None = None) -> Runtime:
    settings = settings or Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url, echo=settings.database.echo)
    sessions = make_sessionmaker(engine)
    if settings.storage.backend != "filesystem":
        raise ValueError(f"Unknown storage backend {settings.storage.backend!r}")
    blobs = FilesystemBlobStore(settings.blob_path)
    return Runtime(settings=settings, engine=engine, sessions=sessions, blobs=blobs,
                   indexer=Indexer(sessions), downloads=DownloadRecorder(sessions))
