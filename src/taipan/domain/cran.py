"""R packages as CRAN-like repositories hold them: DESCRIPTION files read as R reads them (DCF),
R's package names and versions, package file names, the checks on an uploaded source or binary
package, the repository partitions (``src/contrib``, ``bin/windows/contrib/4.3``, ...) and the
stanzas of ``PACKAGES``. Pure: no I/O beyond reading the archive it is given.
"""

from __future__ import annotations

import fnmatch
import re
import tarfile
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from taipan.domain import rds
from taipan.domain.member_digests import MemberDigests
from taipan.errors import InvalidInput

# The fields tools::write_PACKAGES writes (tools:::.get_standard_repository_db_fields), in its order;
# binary trees add Built, and every stanza here also carries SHA256.
PACKAGES_FIELDS = ("Package", "Version", "Priority", "Depends", "Imports", "LinkingTo", "Suggests", "Enhances",
                   "License", "License_is_FOSS", "License_restricts_use", "OS_type", "Archs", "MD5sum",
                   "NeedsCompilation", "Built", "SHA256")
DEPENDENCY_FIELDS = ("Depends", "Imports", "LinkingTo")  # what a package needs to install and run

# R's .standard_regexps(): valid_package_name and valid_package_version.
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]\Z")
VERSION_RE = re.compile(r"(?:[0-9]+[.-])+[0-9]+\Z")
_FIELD_RE = re.compile(rb"([^\s:]+):(.*)\Z", re.S)
SOURCE_EXT, WINDOWS_EXT, MAC_EXT = ".tar.gz", ".zip", ".tgz"
SOURCE_PARTITION = "src/contrib"
# macOS binary trees besides bin/macosx/contrib/<x.y> (R's .Platform$pkgType "mac.binary.<build>").
MAC_BUILDS = frozenset({"big-sur-arm64", "big-sur-x86_64", "sonoma-arm64", "el-capitan", "mavericks"})
_R_XY = r"[1-9][0-9]?\.[0-9]{1,2}"
PARTITION_RE = re.compile(rf"(?:src/contrib|bin/windows/contrib/{_R_XY}|bin/macosx/(?:[a-z0-9_-]+/)?contrib/{_R_XY})\Z")

MAX_MEMBERS = 100_000
MAX_UNPACKED = 8 * 1024 ** 3  # a package that unpacks to more than this is refused (a bomb, or a mistake)
MAX_DESCRIPTION = 1024 * 1024
# R's Encoding values -> Python codecs.
_ENCODINGS = {"latin1": "latin-1", "latin-1": "latin-1", "latin2": "iso8859-2", "utf-8": "utf-8",
              "utf8": "utf-8", "cp1252": "cp1252", "windows-1252": "cp1252", "iso-8859-1": "latin-1",
              "iso-8859-15": "iso8859-15", "iso8859-1": "latin-1", "ascii": "ascii"}


def _invalid(message: str, hint: str, code: str = "invalid_package") -> InvalidInput:
    return InvalidInput(message, hint, code=code)


# -- DCF ---------------------------------------------------------------------------------------------

def parse_dcf(data: bytes) -> list[dict[str, str]]:
    """Records of a DCF file as ``read.dcf`` reads them: ``Tag: value`` lines, continuation lines
    (starting with a blank) joined with a newline after stripping their leading blanks, records
    separated by blank lines, values trimmed. Each record is decoded by its own ``Encoding:`` field
    (UTF-8, else Latin-1, when it has none)."""
    records: list[dict[str, bytes]] = []
    current: dict[str, bytes] | None = None
    last: str | None = None
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.rstrip(b"\r")
        if not line.strip():
            current, last = None, None
            continue
        if line[:1] in (b" ", b"\t"):
            if current is None or last is None:
                raise _invalid(f"Line {number} of the DESCRIPTION continues no field",
                               "Continuation lines follow a 'Field: value' line", code="invalid_description")
            current[last] = (current[last] + b"\n" + line.strip()).strip()
            continue
        match = _FIELD_RE.match(line)
        if match is None:
            raise _invalid(f"Line {number} of the DESCRIPTION is malformed: {line[:60]!r}",
                           "Each line is 'Field: value' or a continuation starting with a blank",
                           code="invalid_description")
        try:
            tag = match.group(1).decode("ascii")
        except UnicodeDecodeError:
            raise _invalid(f"Line {number} of the DESCRIPTION has a non-ASCII field name",
                           "Field names are ASCII", code="invalid_description") from None
        if current is None:
            current = {}
            records.append(current)
        if tag in current:
            raise _invalid(f"The DESCRIPTION has the field {tag!r} twice", "Keep one of them",
                           code="invalid_description")
        current[tag], last = match.group(2).strip(), tag
    return [_decode(r) for r in records]


def _decode(record: Mapping[str, bytes]) -> dict[str, str]:
    declared = record.get("Encoding", b"").decode("ascii", "replace").strip()
    if declared:
        codec = _ENCODINGS.get(declared.lower())
        if codec is None:
            raise _invalid(f"Unknown Encoding {declared!r} in the DESCRIPTION",
                           "Use Encoding: UTF-8 (or latin1)", code="invalid_description")
        try:
            return {k: v.decode(codec) for k, v in record.items()}
        except UnicodeDecodeError:
            raise _invalid(f"The DESCRIPTION is not valid {declared}",
                           "Save it in the encoding its Encoding field names", code="invalid_description") from None
    out = {}
    for k, v in record.items():
        try:
            out[k] = v.decode("utf-8")
        except UnicodeDecodeError:
            out[k] = v.decode("latin-1")
    return out


def read_description(data: bytes) -> dict[str, str]:
    records = parse_dcf(data)
    if len(records) != 1:
        raise _invalid(f"The DESCRIPTION holds {len(records)} records", "A DESCRIPTION is one record",
                       code="invalid_description")
    return records[0]


def one_line(value: str) -> str:
    """A field value on one line (as ``PACKAGES`` lists it): blanks and newlines collapsed."""
    return " ".join(value.split())


# -- names and versions ------------------------------------------------------------------------------

def is_valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name))


def is_valid_version(version: str) -> bool:
    return bool(VERSION_RE.match(version))


def version_key(version: str) -> tuple[int, ...]:
    """R's numeric_version order: the numbers between dots and dashes, compared in turn, a prefix
    before its extensions (1.0 < 1.0.1; 1-0 == 1.0). Not a version: sorts first."""
    parts = re.split(r"[.-]", version.strip())
    if not all(p.isdigit() and p.isascii() for p in parts):
        return ()
    return tuple(int(p) for p in parts)


def _version_error(version: str) -> InvalidInput:
    return _invalid(f"{version[:80]!r} is not a version R accepts",
                    "R versions are at least two numbers separated by . or -, e.g. 1.0 or 0.9-3",
                    code="invalid_version")


@dataclass(frozen=True)
class RFileName:
    name: str
    version: str
    ext: str  # SOURCE_EXT, WINDOWS_EXT or MAC_EXT


def parse_filename(filename: str) -> RFileName:
    ext = next((e for e in (SOURCE_EXT, WINDOWS_EXT, MAC_EXT) if filename.endswith(e)), None)
    if ext is None:
        raise _invalid(f"{filename} is not named like an R package",
                       "R packages are <name>_<version>.tar.gz (source), .zip (Windows) or .tgz (macOS)",
                       code="invalid_filename")
    stem = filename[:-len(ext)]
    name, sep, version = stem.partition("_")
    if not sep or not is_valid_name(name):
        raise _invalid(f"{filename} is not named <name>_<version>{ext}",
                       "Upload the file as R CMD build names it, e.g. mypkg_1.0.2.tar.gz", code="invalid_filename")
    if not is_valid_version(version):
        raise _version_error(version)
    return RFileName(name, version, ext)


# -- partitions --------------------------------------------------------------------------------------

def is_partition(subdir: str) -> bool:
    if not PARTITION_RE.match(subdir):
        return False
    parts = subdir.split("/")
    return not (parts[1] == "macosx" and len(parts) == 5 and parts[2] not in MAC_BUILDS)


def partition_r_version(subdir: str) -> str | None:
    """The R x.y of a binary tree, None for src/contrib."""
    return None if subdir == SOURCE_PARTITION else subdir.rsplit("/", 1)[1]


def binary_partition(ext: str, built: Built) -> str:
    """Where a binary package goes by default: the tree R itself would look in for it."""
    xy = built.r_xy
    if ext == WINDOWS_EXT:
        return f"bin/windows/contrib/{xy}"
    major_minor = version_key(xy)
    if built.platform.startswith("aarch64") and major_minor >= (4, 1):
        return f"bin/macosx/big-sur-arm64/contrib/{xy}"
    if major_minor >= (4, 3):
        return f"bin/macosx/big-sur-x86_64/contrib/{xy}"
    return f"bin/macosx/contrib/{xy}"


@dataclass(frozen=True)
class Built:
    """The Built field of a binary package: 'R 4.3.1; x86_64-w64-mingw32; 2023-07-01 ...; windows'."""

    r_version: str
    platform: str
    os_type: str

    @property
    def r_xy(self) -> str:
        return ".".join(self.r_version.split(".")[:2])


def parse_built(value: str) -> Built:
    parts = [p.strip() for p in value.split(";")]
    m = re.fullmatch(r"R ([0-9]+\.[0-9]+\.[0-9]+)", parts[0]) if parts else None
    if m is None or len(parts) < 4:
        raise _invalid(f"The Built field {value[:80]!r} is not R's",
                       "Binary packages are made by R CMD INSTALL --build", code="invalid_description")
    return Built(m.group(1), parts[1], parts[3])


# -- reading an upload -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RPackage:
    name: str
    version: str
    subdir: str
    description: dict[str, str]
    binary: bool


def _check_member(name: str, pkg: str, seen: set[str], filename: str) -> str:
    path = PurePosixPath(name)
    clean = name.rstrip("/")
    if name.startswith("/") or path.is_absolute() or ".." in path.parts or "\\" in name or "\x00" in name:
        raise _invalid(f"{filename} has a member with an unsafe path: {name[:100]!r}",
                       "Package members are relative paths without '..'; rebuild it with R CMD build",
                       code="unsafe_archive")
    if clean in seen:
        raise _invalid(f"{filename} has the member {clean[:100]!r} twice",
                       "Rebuild the package with R CMD build", code="unsafe_archive")
    seen.add(clean)
    if path.parts and path.parts[0] not in (pkg, "."):
        raise _invalid(f"{filename} has a member outside the directory {pkg}/: {name[:100]!r}",
                       "Every file of an R package is below <package>/; rebuild it with R CMD build")
    return clean.removeprefix("./")


def _too_big(filename: str, what: str) -> InvalidInput:
    return _invalid(f"{filename} {what}", "Check the package; it should unpack to a reasonable size",
                    code="archive_too_large")


def _read_tar(path: Path, filename: str, pkg: str, max_unpacked: int) -> tuple[bytes | None, set[str]]:
    with open(path, "rb") as fh:
        if fh.read(2) != b"\x1f\x8b":
            raise _invalid(f"{filename} is not gzip-compressed",
                           "R packages are .tar.gz files made by R CMD build", code="not_gzip")
    seen: set[str] = set()
    description = None
    total = 0
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:
                clean = _check_member(member.name, pkg, seen, filename)
                if member.issym() or member.islnk():
                    target = PurePosixPath(member.linkname)
                    if target.is_absolute() or ".." in target.parts:
                        raise _invalid(f"{filename} has a link leaving the package: {member.name[:100]!r}",
                                       "Rebuild the package without such links", code="unsafe_archive")
                elif not (member.isfile() or member.isdir()):
                    raise _invalid(f"{filename} has a special file: {member.name[:100]!r}",
                                   "Packages hold files, directories and links only", code="unsafe_archive")
                total += member.size
                if total > max_unpacked or len(seen) > MAX_MEMBERS:
                    raise _too_big(filename, "unpacks to too much data or too many files")
                if clean == f"{pkg}/DESCRIPTION" and member.isfile():
                    if member.size > MAX_DESCRIPTION:
                        raise _too_big(filename, "has a DESCRIPTION larger than 1 MiB")
                    extracted = tar.extractfile(member)
                    description = extracted.read() if extracted else None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise _invalid(f"{filename} is not a valid .tar.gz archive ({type(exc).__name__})",
                       "The file may be truncated or corrupt; build it again with R CMD build",
                       code="invalid_package") from None
    return description, seen


def _read_zip(path: Path, filename: str, pkg: str, max_unpacked: int) -> tuple[bytes | None, set[str]]:
    seen: set[str] = set()
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS or sum(i.file_size for i in infos) > max_unpacked:
                raise _too_big(filename, "unpacks to too much data or too many files")
            description = None
            for info in infos:
                clean = _check_member(info.filename, pkg, seen, filename)
                if clean == f"{pkg}/DESCRIPTION":
                    if info.file_size > MAX_DESCRIPTION:
                        raise _too_big(filename, "has a DESCRIPTION larger than 1 MiB")
                    with zf.open(info) as fh:
                        description = fh.read(MAX_DESCRIPTION + 1)
            return description, seen
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
        raise _invalid(f"{filename} is not a valid zip archive ({type(exc).__name__})",
                       "Windows binary packages are .zip files made by R CMD INSTALL --build",
                       code="invalid_package") from None


def read_package(path: Path, filename: str, *, subdir: str | None = None,
                 max_unpacked: int = MAX_UNPACKED) -> RPackage:
    """Read and check an uploaded R package completely; InvalidInput with a hint when it is bad."""
    fn = parse_filename(filename)
    if fn.ext == WINDOWS_EXT:
        description, members = _read_zip(path, filename, fn.name, max_unpacked)
    else:
        description, members = _read_tar(path, filename, fn.name, max_unpacked)
    if description is None:
        raise _invalid(f"{filename} has no {fn.name}/DESCRIPTION",
                       "An R package is a directory named after the package holding DESCRIPTION and "
                       "NAMESPACE; build it with R CMD build", code="missing_description")
    if f"{fn.name}/NAMESPACE" not in members:
        raise _invalid(f"{filename} has no {fn.name}/NAMESPACE",
                       "R CMD build writes a NAMESPACE; build the package with it", code="missing_namespace")
    desc = read_description(description)
    name, version = desc.get("Package", ""), desc.get("Version", "")
    if not name or not version:
        raise _invalid(f"The DESCRIPTION of {filename} lacks Package or Version",
                       "Both fields are required", code="invalid_description")
    if not is_valid_version(version):
        raise _version_error(version)
    if name != fn.name or version != fn.version:
        raise _invalid(f"{filename} holds {name} {version}, which its file name does not say",
                       f"Name the file {name}_{version}{fn.ext}", code="filename_mismatch")
    built_value = desc.get("Built")
    if fn.ext == SOURCE_EXT:
        if built_value:
            raise _invalid(f"{filename} is an installed (binary) build, not a source package",
                           "Upload the source package made by R CMD build, or a Windows .zip / macOS .tgz binary",
                           code="binary_as_source")
        if subdir not in (None, "", SOURCE_PARTITION):
            raise _invalid(f"Source packages go in {SOURCE_PARTITION}, not {subdir!r}",
                           "Leave the partition out for source packages", code="invalid_subdir")
        return RPackage(name, version, SOURCE_PARTITION, desc, binary=False)
    if not built_value:
        raise _invalid(f"{filename} is not a binary package (its DESCRIPTION has no Built field)",
                       "Build binaries with R CMD INSTALL --build; upload sources as .tar.gz", code="not_binary")
    built = parse_built(built_value)
    windows = built.os_type == "windows"
    if (fn.ext == WINDOWS_EXT) != windows or (fn.ext == MAC_EXT and "apple-darwin" not in built.platform):
        raise _invalid(f"{filename} was built for {built.platform or built.os_type}, which its extension "
                       f"({fn.ext}) does not match", ".zip binaries are for Windows, .tgz binaries for macOS",
                       code="platform_mismatch")
    target = subdir or binary_partition(fn.ext, built)
    kind = "bin/windows/" if fn.ext == WINDOWS_EXT else "bin/macosx/"
    if not is_partition(target) or not target.startswith(kind):
        raise _invalid(f"{target!r} is not a {'Windows' if windows else 'macOS'} binary tree",
                       f"Use {binary_partition(fn.ext, built)}", code="invalid_subdir")
    if partition_r_version(target) != built.r_xy:
        raise _invalid(f"{filename} was built with R {built.r_version}, not for the tree {target}",
                       f"Use {binary_partition(fn.ext, built)}", code="invalid_subdir")
    return RPackage(name, version, target, desc, binary=True)


def package_files(path: Path, filename: str, *, max_unpacked: int = MAX_UNPACKED) -> list[tuple[str, str, str]]:
    """The files inside a stored R package as ``(path, sha1, sha256)``, for its SBOM (bounded like
    an upload: at most MAX_MEMBERS files and ``max_unpacked`` bytes are read)."""
    found = MemberDigests(max_unpacked, lambda: _too_big(filename, "unpacks to too much data"))
    if filename.endswith(WINDOWS_EXT):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist()[:MAX_MEMBERS]:
                if not info.is_dir():
                    with zf.open(info) as fh:
                        found.add(info.filename, fh)
        return found.files
    with tarfile.open(path, mode="r:gz") as tar:
        for member in tar:
            if member.isfile():
                extracted = tar.extractfile(member)
                if extracted is not None:
                    found.add(member.name, extracted)
            if len(found.files) >= MAX_MEMBERS:
                break
    return found.files


# -- records and PACKAGES ----------------------------------------------------------------------------

def make_record(pkg: RPackage, *, md5: str, sha256: str, size: int) -> dict[str, Any]:
    """The stored record: the PACKAGES fields of this file (values on one line), and its size."""
    record: dict[str, Any] = {f: one_line(pkg.description[f]) for f in PACKAGES_FIELDS if pkg.description.get(f)}
    if not pkg.binary:
        record.pop("Built", None)
    if pkg.description.get("Packaged"):  # when it was built: the time Meta/archive.rds gives
        record["Packaged"] = one_line(pkg.description["Packaged"])
    record.update(MD5sum=md5, SHA256=sha256, size=size)
    return record


def stanza(record: Mapping[str, Any]) -> bytes:
    """The PACKAGES entry of one file."""
    return "".join(f"{f}: {record[f]}\n" for f in PACKAGES_FIELDS if record.get(f)).encode()


_DEP_RE = re.compile(r"\s*([A-Za-z][A-Za-z0-9.]*[A-Za-z0-9])\s*(?:\(([^)]*)\))?\s*\Z")


def dependencies(record: Mapping[str, Any], fields: tuple[str, ...] = DEPENDENCY_FIELDS) -> list[tuple[str, str]]:
    """(package, requirement as written) of the fields, R itself left out: 'ggplot2 (>= 3.4)'."""
    out = []
    for field in fields:
        for item in str(record.get(field) or "").split(","):
            m = _DEP_RE.match(item)
            if m and m.group(1) != "R":
                out.append((m.group(1), one_line(item)))
    return out


# -- PACKAGES.rds and Meta/archive.rds, in R's own serialization (domain/rds.py) ----------------------

# tools:::.get_standard_repository_db_fields(): the columns of every PACKAGES.rds, in order.
STANDARD_FIELDS = PACKAGES_FIELDS[:15]


def rds_row(record: Mapping[str, Any]) -> tuple[bytes, ...]:
    """A package's row of PACKAGES.rds, each of PACKAGES_FIELDS encoded (rds.charsxp) once."""
    return tuple(rds.charsxp(str(record[f]) if record.get(f) else None) for f in PACKAGES_FIELDS)


_NA = rds.charsxp(None)


def packages_rds(rows: list[tuple[bytes, ...]]) -> bytes:
    """PACKAGES.rds as tools::write_PACKAGES saves it (uncompressed; readRDS also takes gzip): a
    character matrix, one row (rds_row) per package named by it, the standard fields (plus Built and
    SHA256 when present) as columns, NA where a package has no value."""
    extra = [i for i in range(len(STANDARD_FIELDS), len(PACKAGES_FIELDS)) if any(r[i] is not _NA for r in rows)]
    columns = [*range(len(STANDARD_FIELDS)), *extra]
    cells = [r[c] for c in columns for r in rows]  # column-major
    return rds.serialize(rds.character_encoded(cells, dim=rds.integer([len(rows), len(columns)]), dimnames=rds.rlist(
        [rds.character_encoded([r[0] for r in rows]), rds.character([PACKAGES_FIELDS[c] for c in columns])])))


def packaged_time(value: str | None) -> float | None:
    """Seconds since the epoch of a DESCRIPTION's ``Packaged: 2024-01-31 10:00:00 UTC; user``."""
    m = re.match(r"\s*(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)", value or "")
    if m is None:
        return None
    try:
        return datetime(*map(int, m.groups()), tzinfo=UTC).timestamp()
    except ValueError:
        return None


def archive_rds(archived: Mapping[str, list[Mapping[str, Any]]]) -> bytes:
    """src/contrib/Meta/archive.rds as CRAN publishes it (what remotes::install_version reads): a
    list named by package of data frames like file.info() of its archived files, whose row names
    are ``<pkg>/<pkg>_<version>.tar.gz``. Times are when each package was built (``Packaged``)."""
    posixct = rds.character(["POSIXct", "POSIXt"])
    frames = []
    names = sorted(archived)
    for name in names:
        records = sorted(archived[name], key=lambda r: version_key(str(r.get("Version"))))
        n = len(records)
        times = [packaged_time(r.get("Packaged")) for r in records]
        columns = {
            "size": rds.double([float(r.get("size") or 0) for r in records]),
            "isdir": rds.logical([False] * n),
            "mode": rds.integer([0o644] * n, **{"class": rds.character(["octmode"])}),
            "mtime": rds.double(times, **{"class": posixct}),
            "ctime": rds.double(times, **{"class": posixct}),
            "atime": rds.double(times, **{"class": posixct}),
            "uid": rds.integer([0] * n), "gid": rds.integer([0] * n),
            "uname": rds.character(["taipan"] * n), "grname": rds.character(["taipan"] * n),
        }
        frames.append(rds.rlist(list(columns.values()), names=rds.character(list(columns)), **{
            "class": rds.character(["data.frame"]),
            "row.names": rds.character([f"{name}/{name}_{r.get('Version')}.tar.gz" for r in records])}))
    return rds.serialize(rds.rlist(frames, names=rds.character(names)))


# -- requirements: what a CRAN mirror's --only_spec/--exclude_spec/--include_spec and Depends say -----

# Packages shipped with R itself (base and recommended): a dependency on them is never "missing".
BASE_PACKAGES = frozenset({"base", "compiler", "datasets", "graphics", "grDevices", "grid", "methods",
                           "parallel", "splines", "stats", "stats4", "tcltk", "tools", "utils", "R"})
RECOMMENDED_PACKAGES = frozenset({"KernSmooth", "MASS", "Matrix", "boot", "class", "cluster", "codetools",
                                  "foreign", "lattice", "mgcv", "nlme", "nnet", "rpart", "spatial", "survival"})
_OPS = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "==": lambda a, b: a == b,
        "<=": lambda a, b: a <= b, "<": lambda a, b: a < b, "!=": lambda a, b: a != b}
_NUMERIC_VERSION_RE = re.compile(r"(?:[0-9]+[.-])*[0-9]+\Z")
_REQ_RE = re.compile(r"\s*(?P<name>[A-Za-z0-9.*?]+)\s*(?:\(\s*(?P<op1>>=|<=|==|!=|>|<)\s*(?P<v1>[^\s()]+)\s*\)"
                     r"|(?P<op2>>=|<=|==|!=|>|<)\s*(?P<v2>[^\s()]+))?\s*\Z")


@dataclass(frozen=True)
class RRequirement:
    """A package name (or a glob over names) with an optional version constraint, as R writes it in
    Depends (``ggplot2 (>= 3.4)``) or pip-like (``ggplot2>=3.4``)."""

    name: str
    op: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return self.name if self.op is None else f"{self.name} ({self.op} {self.version})"

    @property
    def is_glob(self) -> bool:
        return any(c in self.name for c in "*?")

    def matches_name(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.name) if self.is_glob else name == self.name

    def matches(self, name: str, version: str) -> bool:
        if not self.matches_name(name):
            return False
        if self.op is None or self.version is None:
            return True
        have = version_key(version)
        return bool(have) and _OPS[self.op](have, version_key(self.version))


def parse_requirement(text: str) -> RRequirement:
    """``ggplot2``, ``ggplot2 (>= 3.4)``, ``ggplot2>=3.4``, ``gg*``; InvalidInput with a hint otherwise."""
    m = _REQ_RE.match(text or "")
    hint = "Write a package name with an optional constraint: ggplot2, ggplot2 (>= 3.4) or ggplot2>=3.4"
    if m is None or not text.strip():
        raise _invalid(f"{str(text)[:80]!r} is not an R package requirement", hint, code="invalid_spec")
    name = m.group("name")
    if not name.replace("*", "").replace("?", "") and name != "*":
        raise _invalid(f"{text[:80]!r} names no package", hint, code="invalid_spec")
    if "*" not in name and "?" not in name and not (is_valid_name(name) or name == "R"):
        raise _invalid(f"{name[:80]!r} is not an R package name",
                       "R package names start with a letter and hold letters, digits and dots", code="invalid_spec")
    op, version = m.group("op1") or m.group("op2"), m.group("v1") or m.group("v2")
    if version is not None and not _NUMERIC_VERSION_RE.match(version):
        raise _version_error(version)
    return RRequirement(name, op, version)


def parse_requirements(field: str) -> list[RRequirement]:
    """A Depends/Imports/LinkingTo field: comma-separated requirements (blanks and newlines allowed)."""
    return [parse_requirement(item) for item in field.split(",") if item.strip()]


def is_shipped_with_r(name: str) -> bool:
    """True for R itself and its base and recommended packages."""
    return name in BASE_PACKAGES or name in RECOMMENDED_PACKAGES
