"""Reading an upstream PEP 503 (HTML) or PEP 691 (JSON) simple index, and the PEP 508 filters of a
python_simple mirror. Pure: the caller fetches the bytes."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

import orjson
from packaging.markers import default_environment
from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from taipan.domain.families.python import parse_filename
from taipan.domain.matchspec import family_of_license
from taipan.errors import InvalidInput, UpstreamError

JSON_ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
               "text/html;q=0.1")
MAX_PROJECTS_WITHOUT_LIST = 10_000


@dataclass(frozen=True)
class UpstreamFile:
    project: str  # normalized
    filename: str
    version: str
    url: str  # absolute, without fragment
    sha256: str | None
    requires_python: str | None
    yanked: str | None  # None: not yanked; "" or a reason: yanked
    upload_time: str | None
    size: int | None
    has_metadata: bool = False  # PEP 658/714: <url>.metadata exists upstream


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[dict[str, str | None], str]] = []
        self._current: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._current, self._text = dict(attrs), ""

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._current is not None:
            self.links.append((self._current, self._text.strip()))
            self._current = None


def is_json(content_type: str | None) -> bool:
    return bool(content_type) and "json" in str(content_type).split(";")[0]


def parse_root(content: bytes, content_type: str | None) -> list[str]:
    """Normalized project names of an index's root page."""
    if is_json(content_type):
        data = _json(content, "the project list")
        return sorted({str(canonicalize_name(p["name"])) for p in data.get("projects", [])
                       if isinstance(p, dict) and isinstance(p.get("name"), str)})
    parser = _Links()
    parser.feed(content.decode("utf-8", "replace"))
    return sorted({str(canonicalize_name(text)) for _, text in parser.links if text})


def _json(content: bytes, what: str) -> dict[str, Any]:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"The upstream's {what} is not valid JSON", "Check the source URL",
                            code="upstream_corrupt") from exc
    if not isinstance(data, dict):
        raise UpstreamError(f"The upstream's {what} is not a JSON object", "Check the source URL",
                            code="upstream_corrupt")
    return data


def _file(project: str, filename: str, url: str, **kw: Any) -> UpstreamFile | None:
    try:
        name, version, _ = parse_filename(filename)
    except InvalidInput:
        return None  # not a wheel or sdist (e.g. .egg, .exe): not served by Taipan
    if name != project:
        return None
    return UpstreamFile(project=project, filename=filename, version=version, url=url, **kw)


def parse_project(project: str, content: bytes, content_type: str | None, page_url: str) -> list[UpstreamFile]:
    """The wheels and sdists of one project page (other file types are skipped)."""
    out: list[UpstreamFile] = []
    if is_json(content_type):
        data = _json(content, f"page of {project}")
        for f in data.get("files", []):
            if not isinstance(f, dict) or not isinstance(f.get("filename"), str) or not isinstance(f.get("url"), str):
                continue
            yanked = f.get("yanked")
            got = _file(project, f["filename"], urldefrag(urljoin(page_url, f["url"]))[0],
                        sha256=(f.get("hashes") or {}).get("sha256"), requires_python=f.get("requires-python"),
                        yanked=None if not yanked else (yanked if isinstance(yanked, str) else ""),
                        upload_time=f.get("upload-time"), size=f.get("size") if isinstance(f.get("size"), int)
                        else None, has_metadata=bool(f.get("core-metadata") or f.get("dist-info-metadata")))
            if got:
                out.append(got)
        return out
    parser = _Links()
    parser.feed(content.decode("utf-8", "replace"))
    for attrs, text in parser.links:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(page_url, href))
        filename = unquote(url.rsplit("/", 1)[-1]) or text
        sha = fragment[len("sha256="):] if fragment.startswith("sha256=") else None
        yanked = attrs.get("data-yanked")
        got = _file(project, filename, url, sha256=sha, requires_python=attrs.get("data-requires-python"),
                    yanked=yanked if "data-yanked" in attrs else None, upload_time=None, size=None,
                    has_metadata=bool(attrs.get("data-core-metadata") or attrs.get("data-dist-info-metadata")))
        if got:
            out.append(got)
    return out


def parse_requirements(texts: list[str]) -> list[Requirement]:
    out = []
    for text in texts:
        try:
            out.append(Requirement(text))
        except InvalidRequirement as exc:
            raise InvalidInput(f"Invalid requirement {text!r}: {exc}",
                               "Write PEP 508 requirements such as 'requests>=2.31,<3'", code="invalid_spec") from exc
    return out


def parse_requirement(text: str) -> Requirement:
    return parse_requirements([text])[0]


def matches(req: Requirement, f: UpstreamFile) -> bool:
    if canonicalize_name(req.name) != f.project:
        return False
    if not req.specifier:
        return True
    try:
        return req.specifier.contains(Version(f.version), prereleases=True)
    except InvalidVersion:
        return False


def tags_ok(f: UpstreamFile, python_tags: list[str], platform_tags: list[str]) -> bool:
    """Whether a wheel has a tag with one of the Python tags and one of the platform tags (globs);
    sdists always pass."""
    if not f.filename.endswith(".whl") or not (python_tags or platform_tags):
        return True
    try:
        tags = parse_wheel_filename(f.filename)[3]
    except ValueError:
        return False
    return any((not python_tags or t.interpreter in python_tags)
               and (not platform_tags or any(fnmatchcase(t.platform, pat) for pat in platform_tags))
               for t in tags)


PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
PLATFORMS = {"linux": ("linux", "Linux", "posix"), "win": ("win32", "Windows", "nt"),
             "macosx": ("darwin", "Darwin", "posix")}


def marker_environments(python_tags: list[str], platform_tags: list[str]) -> list[dict[str, str]]:
    """The environments a mirror keeps files for, to evaluate Requires-Dist markers in: Python
    versions from the Python tags (cp311 -> 3.11; py3 or none: all), platforms from the platform
    tags (manylinux/linux, win, macosx; any or none: all)."""
    versions = {f"{t[2]}.{t[3:]}" for t in python_tags if t[:2] in ("cp", "py", "pp") and len(t) > 3
                and t[2:].isdigit()} or set(PYTHONS)
    kinds = {k for pat in platform_tags for k in PLATFORMS if k in pat} if platform_tags and not any(
        p in ("any", "*") for p in platform_tags) else set(PLATFORMS)
    base = default_environment()
    envs = []
    for v in sorted(versions):
        for k in sorted(kinds or PLATFORMS):
            sys_platform, system, os_name = PLATFORMS[k]
            envs.append({**base, "python_version": v, "python_full_version": v + ".0", "sys_platform": sys_platform,
                         "platform_system": system, "os_name": os_name, "extra": ""})
    return envs


def requirements_of(metadata: bytes, envs: list[dict[str, str]]) -> list[Requirement]:
    """The Requires-Dist entries of core metadata that apply in at least one environment (extras
    are not followed)."""
    try:
        fields, _ = parse_email(metadata)
    except (ValueError, UnicodeDecodeError):
        return []
    out = []
    for text in fields.get("requires_dist") or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is None or any(req.marker.evaluate(env) for env in envs):
            out.append(req)
    return out


def license_family(metadata: bytes | None) -> str:
    """The license family of a distribution from its core metadata: License-Expression (PEP 639)
    first, then License (when it is a name, not a whole license text), then the license classifiers;
    'none' when nothing says."""
    if not metadata:
        return "none"
    try:
        fields, _ = parse_email(metadata)
    except (ValueError, UnicodeDecodeError):
        return "none"
    expr = fields.get("license_expression")
    if expr:
        return family_of_license(expr)
    lic = (fields.get("license") or "").strip()
    if lic and len(lic) <= 200 and "\n" not in lic:
        fam = family_of_license(lic)
        if fam not in ("none", "other"):
            return fam
    for classifier in fields.get("classifiers") or []:
        if classifier.startswith("License ::"):
            fam = family_of_license(classifier.rsplit("::", 1)[-1])
            if fam not in ("none", "other"):
                return fam
    return family_of_license(lic) if lic else "none"
