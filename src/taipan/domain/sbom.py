"""SBOM documents of one stored artifact: SPDX 2.3 JSON and CycloneDX 1.6 JSON, built from what its
family says (``SbomInfo``), its digests, the files inside it and the vulnerabilities known for it.

Pure: the caller (services/sbom.py) gathers the facts. Licenses go in as SPDX expressions only when
they are valid ones (license-expression); other license texts are kept as text (SPDX
``licenseComments``, CycloneDX ``license.name``).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from taipan.domain.families.base import SbomInfo

FORMATS = ("spdx", "cyclonedx")
MEDIA_TYPES = {"spdx": "application/spdx+json", "cyclonedx": "application/vnd.cyclonedx+json; version=1.6"}
EXTENSIONS = {"spdx": ".spdx.json", "cyclonedx": ".cdx.json"}
_SPDXID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
_SEVERITIES = frozenset({"critical", "high", "medium", "low", "info", "none", "unknown"})
_METHODS = frozenset({"CVSSv2", "CVSSv3", "CVSSv31", "CVSSv4", "OWASP", "SSVC", "other"})


@dataclass(frozen=True)
class SbomFacts:
    """Everything an SBOM of one artifact says, gathered by the service."""

    info: SbomInfo
    filename: str
    build: str
    sha256: str
    md5: str
    size: int
    download_url: str
    namespace_base: str  # a URL of this server, for SPDX documentNamespace
    created: datetime
    tool_version: str
    files: Sequence[tuple[str, str, str]] = ()  # (path, sha1, sha256)
    vulnerabilities: Sequence[Any] = field(default_factory=list)  # cve_hooks.Vulnerability


def download_name(info: SbomInfo, build: str, fmt: str) -> str:
    """``<name>-<version>-<build>.spdx.json`` (or ``.cdx.json``); no build part when there is none."""
    parts = [info.name, info.version] + ([build] if build else [])
    return "-".join(parts) + EXTENSIONS[fmt]


@lru_cache(maxsize=1)
def _licensing() -> Any:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


# Bare family names conda metadata often carries: license-expression reads some of them as aliases
# (``GPL`` as GPL-1.0-or-later), but they do not say which license it is.
_FAMILY_WORDS = frozenset({"gpl", "gpl2", "gpl3", "lgpl", "lgpl2", "lgpl3", "agpl", "bsd", "mpl", "apache", "cc",
                           "psf", "mozilla", "public-domain", "publicdomain", "proprietary", "other", "none"})


def spdx_expression(text: str | None) -> str | None:
    """``text`` as a normalised SPDX license expression when it is a valid one made of known SPDX
    license ids; None otherwise (``BSD``, ``GPL``, free text...)."""
    if not text or not isinstance(text, str) or len(text) > 500:
        return None
    if any(word.lower() in _FAMILY_WORDS for word in re.split(r"[\s()]+", text)):
        return None
    try:
        info = _licensing().validate(text.strip(), strict=True)
    except Exception:
        return None
    if info.errors or info.invalid_symbols or not info.normalized_expression:
        return None
    return str(info.normalized_expression)


def _spdx_id(prefix: str, value: str) -> str:
    return f"SPDXRef-{prefix}-" + (_SPDXID_UNSAFE.sub("-", value).strip("-") or "x")[:80]


def _url_or_none(value: str | None) -> str | None:
    return value if isinstance(value, str) and re.match(r"^https?://[^\s]+$", value) else None


# The URL form the SPDX 2.3 specification gives for downloadLocation and homepage (a host name with a
# top-level domain; an IP address or a bare host name does not pass spdx-tools' validation).
_SPDX_URL = re.compile(r"^(https?://)?([\w\-.!~*'()%;:&=+$,]+@)?[a-z0-9]+([\-.][a-z0-9]+){0,100}\.[a-z]{2,5}"
                       r"(:[0-9]{1,5})?(/.*)?$", re.IGNORECASE)


def _spdx_url(value: str | None) -> str | None:
    url = _url_or_none(value)
    return url if url and _SPDX_URL.match(url) else None


def spdx(facts: SbomFacts) -> dict[str, Any]:
    info = facts.info
    main_id = _spdx_id("Package", f"{info.name}-{info.version}")
    license_expr = spdx_expression(info.license)
    package: dict[str, Any] = {
        "SPDXID": main_id, "name": info.name, "versionInfo": info.version, "packageFileName": facts.filename,
        "downloadLocation": _spdx_url(facts.download_url) or "NOASSERTION",
        "checksums": [{"algorithm": "SHA256", "checksumValue": facts.sha256},
                      {"algorithm": "MD5", "checksumValue": facts.md5}],
        "licenseConcluded": "NOASSERTION", "licenseDeclared": license_expr or "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "supplier": f"Organization: {info.supplier}" if info.supplier else "NOASSERTION",
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                          "referenceLocator": info.purl}],
        "filesAnalyzed": bool(facts.files),
    }
    if info.license and not license_expr:
        package["licenseComments"] = f"Declared license (not an SPDX expression): {info.license[:1000]}"
    if not _spdx_url(facts.download_url):
        package["sourceInfo"] = f"Served at {facts.download_url}"
    if homepage := _spdx_url(info.homepage):
        package["homepage"] = homepage
    if info.summary:
        package["summary"] = str(info.summary)[:1000]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": main_id}]
    files = []
    if facts.files:
        # The verification code of SPDX 2.3 section 7.9: SHA-1 of the sorted SHA-1s of the files.
        code = hashlib.sha1("".join(sorted(s1 for _, s1, _ in facts.files)).encode(), usedforsecurity=False)
        package["packageVerificationCode"] = {"packageVerificationCodeValue": code.hexdigest()}
        for n, (path, sha1, sha256) in enumerate(facts.files):
            file_id = f"SPDXRef-File-{n}"
            files.append({"SPDXID": file_id, "fileName": "./" + path.lstrip("./"),
                          "checksums": [{"algorithm": "SHA1", "checksumValue": sha1},
                                        {"algorithm": "SHA256", "checksumValue": sha256}],
                          "licenseConcluded": "NOASSERTION", "copyrightText": "NOASSERTION"})
            relationships.append({"spdxElementId": main_id, "relationshipType": "CONTAINS",
                                  "relatedSpdxElement": file_id})
    packages = [package]
    for n, dep in enumerate(info.dependencies):
        dep_id = _spdx_id("Dependency", f"{n}-{dep.name}")
        entry: dict[str, Any] = {"SPDXID": dep_id, "name": dep.name, "downloadLocation": "NOASSERTION",
                                 "filesAnalyzed": False, "licenseConcluded": "NOASSERTION",
                                 "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION",
                                 "comment": f"Required as: {dep.requirement}"}
        if dep.purl:
            entry["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                      "referenceLocator": dep.purl}]
        packages.append(entry)
        relationships.append({"spdxElementId": main_id, "relationshipType": "DEPENDS_ON",
                              "relatedSpdxElement": dep_id})
    doc_name = download_name(info, facts.build, "spdx")[: -len(".spdx.json")]
    return {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": doc_name,
        "documentNamespace": f"{facts.namespace_base.rstrip('/')}/spdx/{quote(doc_name)}-{facts.sha256}",
        "creationInfo": {"created": facts.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "creators": [f"Tool: taipan-{facts.tool_version}"]},
        "packages": packages, "files": files, "relationships": relationships,
    }


def _rating(v: Any) -> dict[str, Any] | None:
    rating: dict[str, Any] = {}
    if v.score is not None:
        rating["score"] = float(v.score)
    if v.severity and v.severity.lower() in _SEVERITIES:
        rating["severity"] = v.severity.lower()
    if v.method in _METHODS:
        rating["method"] = v.method
    if v.vector:
        rating["vector"] = str(v.vector)
    return rating or None


def cyclonedx(facts: SbomFacts) -> dict[str, Any]:
    info = facts.info
    main_ref = f"pkg:{info.name}@{info.version}"
    license_expr = spdx_expression(info.license)
    component: dict[str, Any] = {
        "type": "library", "bom-ref": main_ref, "name": info.name, "version": info.version, "purl": info.purl,
        "hashes": [{"alg": "SHA-256", "content": facts.sha256}, {"alg": "MD5", "content": facts.md5}],
        "externalReferences": [{"type": "distribution", "url": facts.download_url}],
    }
    if license_expr:
        component["licenses"] = [{"expression": license_expr}]
    elif info.license:
        component["licenses"] = [{"license": {"name": str(info.license)[:1000]}}]
    if info.supplier:
        component["supplier"] = {"name": info.supplier}
    if homepage := _url_or_none(info.homepage):
        component["externalReferences"].append({"type": "website", "url": homepage})
    if info.summary:
        component["description"] = str(info.summary)[:1000]
    components: list[dict[str, Any]] = []
    dep_refs = []
    for n, dep in enumerate(info.dependencies):
        ref = f"dependency-{n}-{dep.name}"
        dep_refs.append(ref)
        entry: dict[str, Any] = {"type": "library", "bom-ref": ref, "name": dep.name,
                                 "description": f"Required as: {dep.requirement}"}
        if dep.purl:
            entry["purl"] = dep.purl
        components.append(entry)
    if facts.files:
        component["components"] = [
            {"type": "file", "bom-ref": f"file-{n}", "name": path,
             "hashes": [{"alg": "SHA-1", "content": sha1}, {"alg": "SHA-256", "content": sha256}]}
            for n, (path, sha1, sha256) in enumerate(facts.files)]
    vulnerabilities = []
    for v in facts.vulnerabilities:
        url = v.url or f"https://nvd.nist.gov/vuln/detail/{quote(v.id)}"
        entry = {"bom-ref": f"vulnerability-{v.id}", "id": v.id,
                 "source": {"name": "OSV" if "osv.dev" in url else "NVD", "url": url},
                 "affects": [{"ref": main_ref}]}
        if v.status:
            # CycloneDX analysis states for the curation statuses of the CVE store.
            state = {"cleared": "resolved", "mitigated": "resolved", "disputed": "false_positive",
                     "active": "exploitable", "reported": "in_triage"}.get(v.status)
            if state:
                entry["analysis"] = {"state": state, "detail": f"Curation status: {v.status}"}
        if rating := _rating(v):
            entry["ratings"] = [rating]
        if v.description:
            entry["description"] = str(v.description)[:4000]
        if v.published:
            entry["published"] = v.published
        vulnerabilities.append(entry)
    bom: dict[str, Any] = {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX", "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, facts.download_url + '#' + facts.sha256)}",
        "version": 1,
        "metadata": {"timestamp": facts.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "tools": {"components": [{"type": "application", "name": "taipan",
                                               "version": facts.tool_version}]},
                     "component": component},
        "components": components,
        "dependencies": [{"ref": main_ref, "dependsOn": dep_refs}, *({"ref": r} for r in dep_refs)],
    }
    if vulnerabilities:
        bom["vulnerabilities"] = vulnerabilities
    return bom
