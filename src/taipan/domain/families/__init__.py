"""The registry of artifact families. Adding a family touches this registry and its own modules.

``KNOWN`` names every family the protocol speaks of (listings and bulk actions accept them), even
before this server can store files of that family; ``get`` returns only implemented families.
"""

from __future__ import annotations

from taipan.domain.families.base import Artifact, Family, IndexFiles, PartitionIndex, SbomDependency, SbomInfo
from taipan.domain.families.conda import CONDA
from taipan.domain.families.cran import CRAN
from taipan.domain.families.environment import ENVIRONMENT
from taipan.domain.families.notebook import NOTEBOOK
from taipan.domain.families.project import PROJECT
from taipan.domain.families.python import PYTHON
from taipan.domain.families.sbom import SBOM
from taipan.errors import InvalidInput

__all__ = ["Artifact", "Family", "IndexFiles", "PartitionIndex", "SbomDependency", "SbomInfo",
           "KNOWN", "get", "implemented",
           "for_upload_type", "for_root", "all_roots", "UPLOAD_TYPES", "check_known"]

KNOWN: tuple[str, ...] = ("conda", "python", "cran", "anaconda_project", "anaconda_env", "notebook", "gra",
                          "sbom")
_FAMILIES: dict[str, Family] = {f.name: f for f in (CONDA, PYTHON, CRAN, NOTEBOOK, ENVIRONMENT, PROJECT, SBOM)}
# Every upload `filetype` a client may send (conda-repo-cli's, twine's, the R form post's), and the
# family it means, whether or not this server implements that family yet.
UPLOAD_TYPES: dict[str, str] = {
    **{t: "conda" for t in CONDA.upload_types},
    "bdist_wheel": "python", "sdist": "python", "pypi": "python", "python": "python",
    "cran_source_package": "cran", "cran_binary_package": "cran", "cran": "cran", "r": "cran",
    "anaconda_env": "anaconda_env", "env": "anaconda_env",
    "jupyter_notebook": "notebook", "ipynb": "notebook", "notebook": "notebook",
    "anaconda_project": "anaconda_project", "project": "anaconda_project",
    "sbom": "sbom",
}


def implemented() -> list[Family]:
    return list(_FAMILIES.values())


def check_known(name: str) -> str:
    if name not in KNOWN:
        raise InvalidInput(f"Unknown artifact family {name!r}", f"Families: {', '.join(KNOWN)}",
                           code="invalid_family")
    return name


def get(name: str) -> Family:
    family = _FAMILIES.get(check_known(name))
    if family is None:
        raise InvalidInput(f"This server does not store {name} artifacts yet",
                           "Families stored here: " + ", ".join(_FAMILIES), code="unsupported_family")
    return family


def for_upload_type(filetype: str) -> Family | None:
    for family in _FAMILIES.values():
        if filetype in family.upload_types:
            return family
    return None


# Asked on every package request: made once (the first family naming a root serves it).
_BY_ROOT: dict[str, Family] = {}
for _family in _FAMILIES.values():
    for _root in _family.roots:
        _BY_ROOT.setdefault(_root, _family)
_ROOTS = frozenset(_BY_ROOT)


def for_root(segment: str) -> Family | None:
    """The family serving /api/repo/<channel>/<segment>/..., if any."""
    return _BY_ROOT.get(segment)


def all_roots() -> frozenset[str]:
    """Every first path segment some family serves: never a subchannel name."""
    return _ROOTS
