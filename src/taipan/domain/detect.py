"""What an upload really is, decided from its content: conda package, wheel, sdist, R source package,
notebook, environment file, anaconda-project or SBOM.

The CLI asks this before uploading, so that it sends the right ``filetype``, names the file's kind in
its messages and refuses a ``-t`` that does not fit. The server decides from the ``filetype`` which
family an upload belongs to (``taipan.domain.families.UPLOAD_TYPES``) and says when it does not store
that family yet. Only the standard library and PyYAML are used here, so the light client can import it
(the families package needs the server's compression libraries).
"""

from __future__ import annotations

import json
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import yaml

# The CLI's --package-type names -> the multipart `filetype` conda-repo-cli sends for them (its
# UPLOAD_TYPE_MAPPING; "cran" is the value Anaconda Server documents for R uploads).
PACKAGE_TYPES: dict[str, str] = {
    "conda": "conda1", "env": "anaconda_env", "ipynb": "jupyter_notebook", "project": "anaconda_project",
    "pypi": "bdist_wheel", "cran": "cran_source_package", "sbom": "sbom",
}
# What each --package-type expects, for "X is not <that>".
TYPE_EXPECTS: dict[str, str] = {
    "conda": "a conda package", "pypi": "a wheel or sdist", "cran": "an R source package",
    "ipynb": "a Jupyter notebook", "env": "an environment file", "project": "an anaconda-project archive",
    "sbom": "an SBOM",
}
PROJECT_FILES = ("anaconda-project.yml", "anaconda-project.yaml")
MAX_MEMBERS = 200_000  # an archive with more entries than this is not worth listing to the end
MAX_TEXT = 64 * 1024 * 1024  # notebooks and YAML files beyond this are not parsed


@dataclass(frozen=True)
class Detected:
    kind: str  # a PACKAGE_TYPES key
    what: str  # said to the user: "a conda package", "a Python wheel", ...


# -- archives ---------------------------------------------------------------------------------------

def _clean(name: str) -> str:
    while name.startswith(("./", "/")):
        name = name[1:] if name.startswith("/") else name[2:]
    return name.rstrip("/")


def _tops(names: Iterable[str]) -> dict[str, set[str]]:
    """{top-level directory: {paths below it}} and '' for entries at the root."""
    tree: dict[str, set[str]] = {}
    for raw in names:
        name = _clean(raw)
        if not name:
            continue
        top, _, rest = name.partition("/")
        if rest:
            tree.setdefault(top, set()).add(rest)
        else:
            tree.setdefault("", set()).add(top)
    return tree


def from_members(names: Iterable[str], *, zip_archive: bool) -> Detected | None:
    """Decide from the entry names of an archive (or a directory listing): the order matters, as in
    conda-repo-cli: conda, then anaconda-project, then wheel, sdist and R source package."""
    names = list(names)
    tree = _tops(names)
    root = tree.get("", set())
    if "info" in tree and "index.json" in tree["info"]:
        return Detected("conda", "a conda package")
    if zip_archive and "metadata.json" in root and any(n.startswith("info-") and n.endswith(".tar.zst")
                                                       for n in root):
        return Detected("conda", "a conda package")
    if root & set(PROJECT_FILES) or any(below & set(PROJECT_FILES) for top, below in tree.items() if top):
        return Detected("project", "an anaconda-project archive")
    if zip_archive and any(top.endswith(".dist-info") and "METADATA" in below for top, below in tree.items()):
        return Detected("pypi", "a Python wheel")
    for top, below in tree.items():
        if top and "PKG-INFO" in below:
            return Detected("pypi", "a Python source distribution (sdist)")
    for top, below in tree.items():
        if top and {"DESCRIPTION", "NAMESPACE"} <= below:
            return Detected("cran", "an R source package")
    return None


def _tar_names(fh: BinaryIO) -> list[str] | None:
    try:
        with tarfile.open(fileobj=fh, mode="r:*") as tar:
            names = []
            for member in tar:
                names.append(member.name)
                # A conda package needs nothing more; stop before decompressing the rest of a big one.
                if _clean(member.name) == "info/index.json" or len(names) >= MAX_MEMBERS:
                    break
            return names
    except (tarfile.TarError, EOFError, OSError, ValueError):
        return None


def _zip_names(fh: BinaryIO) -> list[str] | None:
    try:
        with zipfile.ZipFile(fh) as zf:
            return zf.namelist()[:MAX_MEMBERS]
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


# -- text files -------------------------------------------------------------------------------------

ENV_KEYS = frozenset({"name", "channels", "dependencies", "prefix", "variables", "channel_priority"})


def _from_document(doc: Any, filename: str) -> Detected | None:
    if not isinstance(doc, dict):
        return None
    if "nbformat" in doc and ("cells" in doc or "worksheets" in doc):
        return Detected("ipynb", "a Jupyter notebook")
    if "spdxVersion" in doc or doc.get("bomFormat") == "CycloneDX":
        return Detected("sbom", "an SBOM")
    if filename.lower() in PROJECT_FILES:
        return Detected("project", "an anaconda-project file")
    if "dependencies" in doc or ("name" in doc and set(doc) <= ENV_KEYS and len(doc) > 1):
        return Detected("env", "a conda environment file")
    return None


def _from_text(data: bytes, filename: str) -> Detected | None:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if text.lstrip().startswith("{"):
        try:
            return _from_document(json.loads(text), filename)
        except ValueError:
            pass
    try:
        return _from_document(yaml.safe_load(text), filename)
    except yaml.YAMLError:
        return None


# -- the entry point --------------------------------------------------------------------------------

def detect(fh: BinaryIO, filename: str) -> Detected | None:
    """What the file open as ``fh`` (seekable, binary) is; None when it is none of the known kinds.

    The content decides; the name is used only to read a YAML file called anaconda-project.yml.
    """
    head = fh.read(512)
    fh.seek(0)
    names: list[str] | None = None
    if head.startswith(b"PK\x03\x04"):
        names = _zip_names(fh)
        fh.seek(0)
        return from_members(names, zip_archive=True) if names else None
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or head[257:262] == b"ustar":
        names = _tar_names(fh)
        fh.seek(0)
        return from_members(names, zip_archive=False) if names else None
    if b"\x00" in head:
        return None
    data = fh.read(MAX_TEXT + 1)
    fh.seek(0)
    if len(data) > MAX_TEXT:
        return None
    return _from_text(data, filename)
