"""The anaconda_env family: conda environment files (``environment.yml``), validated as YAML with a
``name``, a ``dependencies`` list and optional ``channels``; served at
``/api/repo/<channel>/envs/<name>/<filename>``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taipan.domain.families.base import Artifact, SbomInfo
from taipan.domain.families.documents import (
    DocumentFamily,
    check_name,
    environment_sbom,
    load_yaml,
    read_text,
    version_of,
)
from taipan.errors import InvalidInput

ROOT = "envs"
WHAT = "a conda environment file"


def _strings(value: Any, field: str, filename: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{filename}: `{field}` is not a list of strings",
                           f"Write `{field}:` as a YAML list, one entry per line starting with '- '",
                           code="invalid_environment")
    return [v.strip() for v in value]


def parse_environment(text: str, filename: str) -> dict[str, Any]:
    doc = load_yaml(text, filename, WHAT)
    deps = doc.get("dependencies")
    if not isinstance(deps, list):
        raise InvalidInput(f"{filename} is not {WHAT}: it has no `dependencies` list",
                           "An environment file has `name:`, `channels:` and a `dependencies:` list "
                           "(`conda env export` writes one)", code="invalid_environment")
    conda_deps: list[str] = []
    pip_deps: list[str] = []
    for dep in deps:
        if isinstance(dep, str):
            conda_deps.append(dep.strip())
        elif isinstance(dep, dict) and set(dep) == {"pip"}:
            pip_deps += _strings(dep["pip"], "pip", filename)
        else:
            raise InvalidInput(f"{filename}: the dependency {str(dep)[:60]!r} is neither a package spec nor "
                               "a `pip:` list", "Each dependency is a spec such as `numpy>=1.26` or `pip: [...]`",
                               code="invalid_environment")
    name = check_name(doc.get("name"), filename, "Add `name: NAME` to the environment file (letters, digits, ._+-)")
    return {"name": name, "channels": _strings(doc.get("channels"), "channels", filename),
            "dependencies": conda_deps, "pip": pip_deps, "raw_dependencies": deps, "doc": doc}


class EnvironmentFamily(DocumentFamily):
    name = "anaconda_env"
    title = "conda environment file"
    kind = "env"
    upload_types = frozenset({"anaconda_env", "env"})
    roots = frozenset({ROOT})
    type_name = "anaconda_env"

    def read_upload(self, path: Path, filename: str, *, sha256: str, md5: str, size: int,
                    subdir: str | None = None) -> Artifact:
        if not filename.endswith((".yml", ".yaml")):
            raise InvalidInput(f"{filename} is an environment file but its name does not end in .yml",
                               "Rename it to environment.yml (or NAME.yml)", code="filename_mismatch")
        env = parse_environment(read_text(path, filename, WHAT), filename)
        name, version = env["name"], version_of(env["doc"].get("version"))
        record = {"name": name, "version": version, "subdir": ROOT, "sha256": sha256, "md5": md5, "size": size,
                  "channels": env["channels"], "dependencies": env["dependencies"], "pip": env["pip"]}
        meta = {"summary": f"Environment {name}: {len(env['dependencies']) + len(env['pip'])} dependencies",
                "environment": {"channels": env["channels"], "dependencies": env["raw_dependencies"]}}
        return Artifact(family=self.name, name=name, version=version, subdir=ROOT, filename=filename,
                        ckey=f"{ROOT}/{name}/{filename}", record=record, meta=meta)

    def sbom_info(self, record: Mapping[str, Any], meta: Mapping[str, Any], *, channel_url: str,
                  subdir: str) -> SbomInfo | None:
        return environment_sbom(self.name, record, meta, channel_url)


ENVIRONMENT = EnvironmentFamily()
