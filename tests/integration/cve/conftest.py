"""The runtime fixture of the CVE integration tests (``db_url`` comes from tests/integration)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taipan.db.migrate import upgrade
from taipan.runtime import Runtime, build_runtime
from taipan.settings import Settings


@pytest.fixture
def runtime(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    upgrade(db_url)
    rt = build_runtime(Settings(home=tmp_path / "home", database={"url": db_url}))
    yield rt
    rt.close()
