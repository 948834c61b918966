"""The notebook family: Jupyter notebooks (``.ipynb``), validated against the notebook JSON schema
(nbformat), served at ``/api/repo/<channel>/jupyter/<name>.ipynb``."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taipan.domain.families.base import Artifact, SbomInfo
from taipan.domain.families.documents import DocumentFamily, check_name, generic_purl, read_text, version_of
from taipan.errors import InvalidInput

ROOT = "jupyter"


def _title(nb: Mapping[str, Any]) -> str:
    """The notebook's first Markdown heading (or its metadata title), for listings."""
    meta_title = (nb.get("metadata") or {}).get("title")
    if isinstance(meta_title, str) and meta_title.strip():
        return meta_title.strip()[:200]
    for cell in nb.get("cells") or ():
        if isinstance(cell, dict) and cell.get("cell_type") == "markdown":
            source = cell.get("source")
            text = "".join(source) if isinstance(source, list) else str(source or "")
            for line in text.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()[:200]
    return ""


def parse_notebook(text: str, filename: str) -> dict[str, Any]:
    """A validated notebook (nbformat 4, or 3 as nbformat reads it); InvalidInput otherwise."""
    import nbformat

    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{filename} is not a notebook: it is not JSON ({exc})",
                           "A .ipynb file is the JSON document Jupyter saves", code="invalid_notebook") from exc
    if not isinstance(raw, dict) or "nbformat" not in raw:
        raise InvalidInput(f"{filename} is not a notebook: it has no nbformat field",
                           "A .ipynb file is the JSON document Jupyter saves", code="invalid_notebook")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
            nbformat.validate(nb)
    except Exception as exc:  # nbformat raises ValidationError, NBFormatError, or KeyErrors on odd input
        message = str(getattr(exc, "message", exc)).splitlines()[0][:300]
        raise InvalidInput(f"{filename} is not a valid notebook: {message}",
                           "Open and save it in Jupyter, or check it with `jupyter nbconvert --to notebook`",
                           code="invalid_notebook") from exc
    return dict(nb)


class NotebookFamily(DocumentFamily):
    name = "notebook"
    title = "Jupyter notebook"
    kind = "ipynb"
    upload_types = frozenset({"jupyter_notebook", "ipynb", "notebook"})
    roots = frozenset({ROOT})
    type_name = "jupyter_notebook"

    def read_upload(self, path: Path, filename: str, *, sha256: str, md5: str, size: int,
                    subdir: str | None = None) -> Artifact:
        if not filename.endswith(".ipynb"):
            raise InvalidInput(f"{filename} is a notebook but its name does not end in .ipynb",
                               "Rename it to NAME.ipynb", code="filename_mismatch")
        nb = parse_notebook(read_text(path, filename, "a notebook"), filename)
        name = check_name(filename[: -len(".ipynb")], filename, "Name the notebook with letters, digits and ._+-")
        metadata = nb.get("metadata") or {}
        version = version_of(metadata.get("version"))
        kernel = (metadata.get("kernelspec") or {}).get("name") or ""
        language = (metadata.get("language_info") or {}).get("name") or (metadata.get("kernelspec") or {}).get(
            "language") or ""
        cells = nb.get("cells") or []
        record = {"name": name, "version": version, "subdir": ROOT, "sha256": sha256, "md5": md5, "size": size,
                  "nbformat": nb.get("nbformat"), "nbformat_minor": nb.get("nbformat_minor"),
                  "kernel": kernel, "language": language}
        meta = {"summary": _title(nb), "notebook": {"kernel": kernel, "language": language, "cells": len(cells),
                                                     "nbformat": f"{nb.get('nbformat')}.{nb.get('nbformat_minor')}"}}
        return Artifact(family=self.name, name=name, version=version, subdir=ROOT, filename=filename,
                        ckey=f"{ROOT}/{filename}", record=record, meta=meta)

    def sbom_info(self, record: Mapping[str, Any], meta: Mapping[str, Any], *, channel_url: str,
                  subdir: str) -> SbomInfo | None:
        name, version = str(record.get("name")), str(record.get("version"))
        return SbomInfo(name=name, version=version, purl=generic_purl(self.name, name, version, channel_url),
                        summary=meta.get("summary") or None)


NOTEBOOK = NotebookFamily()
