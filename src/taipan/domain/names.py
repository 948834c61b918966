"""Names: channels, subchannels, platform subdirs and artifact file names, and their validation."""

from __future__ import annotations

import re

from taipan.errors import InvalidInput

# Every platform subdir conda and rattler know. A subchannel may not take one of these names, so that
# /api/repo/<channel>/<x>/... is never ambiguous between a subchannel and a subdir.
KNOWN_SUBDIRS: tuple[str, ...] = (
    "noarch",
    "linux-32", "linux-64", "linux-aarch64", "linux-armv6l", "linux-armv7l", "linux-loongarch64",
    "linux-ppc", "linux-ppc64", "linux-ppc64le", "linux-riscv32", "linux-riscv64", "linux-s390x",
    "osx-64", "osx-arm64",
    "win-32", "win-64", "win-arm64",
    "freebsd-32", "freebsd-64", "freebsd-arm64", "freebsd-ppc64", "freebsd-ppc64le",
    "emscripten-wasm32", "emscripten-wasm64", "wasi-wasm32",
    "ios-arm64", "iossimulator-64", "iossimulator-arm64",
    "android-32", "android-64", "android-aarch64", "android-armv7a",
    "zos-z",
)
SUBDIR_SET = frozenset(KNOWN_SUBDIRS)

CHANNEL_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
MAX_CHANNEL_NAME = 64
# "t" would collide with the /t/<token>/ prefix of the serving URLs; the others are serving paths.
RESERVED_CHANNEL_NAMES = frozenset({"t", "api", "static", "pypi", "cran", "subchannels"})
# A subchannel name never equals a path segment some family serves under a channel (conda subdirs,
# Python's simple/, R's src/ and bin/, notebooks' jupyter/, ...), so /api/repo/<ch>/<x>/... is never
# ambiguous; the list holds every family's roots, implemented yet or not.
FAMILY_ROOTS = frozenset({"simple", "src", "bin", "jupyter", "envs", "projects", "sbom", "files", "pypi", "cran"})
RESERVED_SUBCHANNEL_NAMES = SUBDIR_SET | FAMILY_ROOTS | {"t", "channeldata.json", "artifacts"}


def validate_channel_name(name: str, *, sub: bool = False) -> str:
    kind = "subchannel" if sub else "channel"
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"A {kind} name is required", "Give a name such as 'snakes'",
                           code="invalid_channel_name")
    if len(name) > MAX_CHANNEL_NAME:
        raise InvalidInput(f"The {kind} name {name[:80]!r} is too long",
                           f"Use at most {MAX_CHANNEL_NAME} characters", code="invalid_channel_name")
    if not CHANNEL_NAME_RE.match(name):
        raise InvalidInput(
            f"Invalid {kind} name {name!r}",
            "Names start with a lower-case letter and contain only a-z, 0-9, '_' and '-'",
            code="invalid_channel_name",
        )
    reserved = RESERVED_SUBCHANNEL_NAMES if sub else RESERVED_CHANNEL_NAMES
    if name in reserved:
        why = "it is a platform subdir" if name in SUBDIR_SET else "it is reserved by the server"
        raise InvalidInput(f"The {kind} name {name!r} cannot be used: {why}", "Choose another name",
                           code="invalid_channel_name")
    return name


def split_channel_path(path: str) -> tuple[str, str | None]:
    """'ch' -> ('ch', None); 'ch/sub' -> ('ch', 'sub'); anything deeper is invalid."""
    parts = path.split("/")
    if len(parts) == 1:
        return validate_channel_name(parts[0]), None
    if len(parts) == 2:
        return validate_channel_name(parts[0]), validate_channel_name(parts[1], sub=True)
    raise InvalidInput(f"Invalid channel path {path!r}", "Use CHANNEL or CHANNEL/SUBCHANNEL",
                       code="invalid_channel_name")


def validate_subdir(subdir: str) -> str:
    if subdir not in SUBDIR_SET:
        raise InvalidInput(f"Unknown platform subdir {subdir!r}",
                           "Known subdirs include noarch, linux-64, osx-arm64, win-64",
                           code="unknown_subdir")
    return subdir


_SAFE_FILENAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+!-]*$")


def validate_filename(filename: str) -> str:
    """A stored file name: one path component, no traversal, no control characters."""
    if (not filename or len(filename) > 255 or "/" in filename or "\\" in filename
            or filename in (".", "..") or ".." in filename or not _SAFE_FILENAME_RE.match(filename)):
        raise InvalidInput(f"Invalid file name {filename[:100]!r}",
                           "A file name is a single path component made of letters, digits and ._+!-",
                           code="invalid_filename")
    return filename


def default_channel_name(username: str) -> str | None:
    """The personal channel of a user: the user name (for an e-mail address, the part before '@'),
    lower-cased, with characters a channel name cannot hold replaced by '_'; None if nothing usable."""
    local = username.split("@", 1)[0].lower()
    name = re.sub(r"[^a-z0-9_-]", "_", local)[:MAX_CHANNEL_NAME]
    if not name or not name[0].isalpha() or name in RESERVED_CHANNEL_NAMES:
        return None
    return name
