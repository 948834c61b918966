"""The sbom family: SBOM documents uploaded as artifacts (SPDX 2.x JSON or CycloneDX JSON), stored
and served as uploaded at ``/api/repo/<channel>/sbom/<name>/<filename>``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taipan.domain.families.base import Artifact, SbomInfo
from taipan.domain.families.documents import DocumentFamily, check_name, read_text, version_of
from taipan.errors import InvalidInput

ROOT = "sbom"
WHAT = "an SBOM"
HINT = "Upload SPDX 2.x JSON (spdxVersion) or CycloneDX JSON (bomFormat: CycloneDX)"


def _stem(filename: str) -> str:
    for ext in (".spdx.json", ".cdx.json", ".cyclonedx.json", ".bom.json", ".json"):
        if filename.endswith(ext):
            return filename[: -len(ext)]
    return filename


def describe(doc: Mapping[str, Any], filename: str) -> dict[str, Any]:
    """Format, spec version, and the package the SBOM describes (name, version) as far as it says."""
    if isinstance(doc.get("spdxVersion"), str) and doc["spdxVersion"].startswith("SPDX-"):
        packages = [p for p in doc.get("packages") or [] if isinstance(p, dict)]
        described = set()
        for rel in doc.get("relationships") or []:
            if isinstance(rel, dict) and rel.get("relationshipType") == "DESCRIBES":
                described.add(rel.get("relatedSpdxElement"))
        described |= set(doc.get("documentDescribes") or [])
        main = next((p for p in packages if p.get("SPDXID") in described), packages[0] if packages else {})
        return {"format": "spdx", "spec_version": doc["spdxVersion"], "document": str(doc.get("name") or ""),
                "name": main.get("name") or doc.get("name"), "version": main.get("versionInfo"),
                "packages": len(packages)}
    if doc.get("bomFormat") == "CycloneDX":
        component = (doc.get("metadata") or {}).get("component") or {}
        return {"format": "cyclonedx", "spec_version": str(doc.get("specVersion") or ""),
                "document": str(doc.get("serialNumber") or ""), "name": component.get("name"),
                "version": component.get("version"), "packages": len(doc.get("components") or [])}
    raise InvalidInput(f"{filename} is not {WHAT}", HINT, code="invalid_sbom")


class SbomFamily(DocumentFamily):
    name = "sbom"
    title = "SBOM"
    kind = "sbom"
    upload_types = frozenset({"sbom"})
    roots = frozenset({ROOT})
    type_name = "sbom"

    def read_upload(self, path: Path, filename: str, *, sha256: str, md5: str, size: int,
                    subdir: str | None = None) -> Artifact:
        if not filename.endswith(".json"):
            raise InvalidInput(f"{filename} is not a JSON SBOM by its name", "Name it NAME.spdx.json or NAME.cdx.json",
                               code="filename_mismatch")
        try:
            doc = json.loads(read_text(path, filename, WHAT))
        except ValueError as exc:
            raise InvalidInput(f"{filename} is not {WHAT}: it is not JSON", HINT, code="invalid_sbom") from exc
        if not isinstance(doc, dict):
            raise InvalidInput(f"{filename} is not {WHAT}", HINT, code="invalid_sbom")
        info = describe(doc, filename)
        raw_name = info["name"] if isinstance(info["name"], str) and info["name"].strip() else _stem(filename)
        name = check_name(raw_name.strip().replace(" ", "-"), filename, "Give the described package a name")
        version = version_of(info["version"])
        record = {"name": name, "version": version, "subdir": ROOT, "sha256": sha256, "md5": md5, "size": size,
                  "format": info["format"], "spec_version": info["spec_version"]}
        meta = {"summary": f"{info['format'].upper()} {info['spec_version']} SBOM of {name} {version}",
                "sbom": info}
        return Artifact(family=self.name, name=name, version=version, subdir=ROOT, filename=filename,
                        ckey=f"{ROOT}/{name}/{filename}", record=record, meta=meta)

    def sbom_info(self, record: Mapping[str, Any], meta: Mapping[str, Any], *, channel_url: str,
                  subdir: str) -> SbomInfo | None:
        return None  # an SBOM is its own SBOM: it is served as uploaded


SBOM = SbomFamily()
