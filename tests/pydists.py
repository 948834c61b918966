"""Real Python distributions for the tests: valid wheels (with RECORD) and sdists that pip and uv can
build offline (an in-tree, standard-library-only PEP 517 backend)."""

from __future__ import annotations

from pathlib import Path

_SDIST_BACKEND = '''"""A self-contained PEP 517 backend: builds this sdist's wheel with the standard library only."""
import base64, hashlib, os, zipfile

def _meta():
    with open("PKG-INFO", encoding="utf-8") as fh:
        return fh.read()

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    meta = _meta()
    fields = dict(line.split(": ", 1) for line in meta.splitlines() if ": " in line and not line.startswith(" "))
    dist, version = fields["Name"].replace("-", "_").lower(), fields["Version"]
    name = f"{dist}-{version}-py3-none-any.whl"
    files = {}
    for root, _, fns in os.walk(dist):
        for fn in fns:
            with open(os.path.join(root, fn), "rb") as fh:
                files[os.path.join(root, fn).replace(os.sep, "/")] = fh.read()
    info = f"{dist}-{version}.dist-info"
    files[f"{info}/METADATA"] = meta.encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return name
'''


def python_metadata(name: str, version: str, *, requires_dist: list[str] | None = None,
                    requires_python: str | None = None, summary: str | None = None) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             f"Summary: {summary or f'The {name} project'}", "License: MIT", f"Home-page: https://example.invalid/{name}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires_dist or []]
    return "\n".join(lines) + "\n\nThe long description.\n"


def build_wheel(out_dir: Path, name: str, version: str, *, requires_dist: list[str] | None = None,
                requires_python: str | None = None, tag: str = "py3-none-any", metadata: str | None = None,
                extra: dict[str, bytes] | None = None) -> Path:
    """A valid wheel (PEP 427, with RECORD) holding the module <name>/__init__.py."""
    import base64
    import hashlib
    import zipfile

    dist = name.replace("-", "_").replace(".", "_").lower()
    info = f"{dist}-{version}.dist-info"
    files = {f"{dist}/__init__.py": f"VERSION = {version!r}\n".encode(),
             f"{info}/METADATA": (metadata or python_metadata(name, version, requires_dist=requires_dist,
                                                              requires_python=requires_python)).encode(),
             f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: {tag}\n".encode(),
             **(extra or {})}
    record = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
              for p, d in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p, d in files.items():
            zf.writestr(p, d)
    return path


def build_sdist(out_dir: Path, name: str, version: str, *, requires_dist: list[str] | None = None,
                requires_python: str | None = None, metadata: str | None = None,
                extra: dict[str, bytes] | None = None) -> Path:
    """A valid sdist (PEP 625 name, PKG-INFO, pyproject.toml) with an in-tree stdlib-only PEP 517
    backend, so pip and uv build it without fetching anything."""
    import io
    import tarfile

    dist = name.replace("-", "_").replace(".", "_").lower()
    top = f"{dist}-{version}"
    pyproject = ('[build-system]\nrequires = []\nbuild-backend = "_backend"\nbackend-path = ["."]\n')
    files = {f"{top}/PKG-INFO": (metadata or python_metadata(name, version, requires_dist=requires_dist,
                                                             requires_python=requires_python)).encode(),
             f"{top}/pyproject.toml": pyproject.encode(), f"{top}/_backend.py": _SDIST_BACKEND.encode(),
             f"{top}/{dist}/__init__.py": f"VERSION = {version!r}\n".encode(), **(extra or {})}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for p, d in files.items():
            info = tarfile.TarInfo(p)
            info.size = len(d)
            info.mtime = 1_700_000_000
            tf.addfile(info, io.BytesIO(d))
    return path
