"""R itself against Taipan channels: available.packages(), install.packages(type = "source") pulling in
a dependency, PACKAGES.rds and Meta/archive.rds read by R (the former identical to what
tools::write_PACKAGES makes of the same files), an old version from src/contrib/Archive by URL, and a
private channel with the token in the path or in the URL's user info (http://TOKEN:x-auth-token@host/...).
Rscript is required on CI (tests/conftest.py's r_bin fixture fails there when it is missing, and skips
elsewhere)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import httpx


def _channel(server, privacy: str, packages: list[Path]) -> str:
    name = f"rc-{uuid.uuid4().hex[:8]}"
    token = server.admin_token()
    with server.client(token) as c:
        c.post("/channels", json={"name": name, "privacy": privacy}).raise_for_status()
    for p in packages:
        r = httpx.post(f"{server.url}/api/repo/{name}", files={"content": (p.name, p.read_bytes())},
                       data={"filetype": "cran_source_package"}, headers={"X-Auth": token})
        assert r.status_code == 201, r.text
    return name


def run_r(r_bin: str, code: str, tmp_path: Path, **env: str) -> str:
    script = tmp_path / f"script-{uuid.uuid4().hex[:6]}.R"
    script.write_text(code)
    proc = subprocess.run([r_bin, "--vanilla", str(script)], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "R_LIBS_USER": str(tmp_path / "none"),
                               "LANG": "C.UTF-8", **env})
    assert proc.returncode == 0, f"R failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


INSTALL = r"""
repo <- Sys.getenv("REPO")
lib <- Sys.getenv("LIB")
dir.create(lib, showWarnings = FALSE)
.libPaths(c(lib, .libPaths()))
ap <- available.packages(repos = repo, type = "source")
cat("AVAILABLE:", paste(sort(paste(rownames(ap), ap[, "Version"])), collapse = ","), "\n")
tmp <- tempfile()
download.file(paste0(repo, "/src/contrib/PACKAGES.rds"), tmp, quiet = TRUE, mode = "wb")
ours <- readRDS(tmp)
local <- Sys.getenv("LOCALREPO")
tools::write_PACKAGES(local, type = "source")
theirs <- readRDS(file.path(local, "PACKAGES.rds"))
cat("RDS COLUMNS:", setdiff(colnames(ours), colnames(theirs)), "\n")
cat("RDS IDENTICAL:", identical(ours[, colnames(theirs), drop = FALSE], theirs), "\n")
archive <- readRDS(gzcon(url(paste0(repo, "/src/contrib/Meta/archive.rds"))))
cat("ARCHIVE:", names(archive), rownames(archive$tpmain), !is.na(archive$tpmain$mtime),
    inherits(archive$tpmain$mtime, "POSIXct"), "\n")
install.packages("tpmain", repos = repo, type = "source", lib = lib, quiet = TRUE)
library(tpmain, lib.loc = lib)
cat("HELLO:", hello(), "\n")
old <- file.path(Sys.getenv("OLDLIB"))
dir.create(old, showWarnings = FALSE)
install.packages(paste0(repo, "/src/contrib/Archive/tpmain/tpmain_0.9.tar.gz"), repos = NULL, type = "source",
                 lib = old, quiet = TRUE)
cat("OLD:", as.character(packageVersion("tpmain", lib.loc = old)), "\n")
"""


def test_r_installs_a_package_and_its_dependency_and_an_archived_version(taipan_server, r_packages, r_bin, tmp_path):
    ch = _channel(taipan_server, "public", [r_packages["tpdep"], r_packages["tpmain-0.9"], r_packages["tpmain"]])
    local = tmp_path / "local-repo"
    local.mkdir()
    for key in ("tpdep", "tpmain-0.9", "tpmain"):
        shutil.copy(r_packages[key], local)
    out = run_r(r_bin, INSTALL, tmp_path, REPO=f"{taipan_server.url}/api/repo/{ch}", LIB=str(tmp_path / "lib"),
                OLDLIB=str(tmp_path / "oldlib"), LOCALREPO=str(local))
    assert "RDS COLUMNS: SHA256 \n" in out and "RDS IDENTICAL: TRUE \n" in out, out
    assert "AVAILABLE: tpdep 1.0,tpmain 1.0 \n" in out
    assert "HELLO: tpmain 1.0 tpdep 1.0 \n" in out  # tpmain calls into tpdep, installed as its dependency
    assert "OLD: 0.9 \n" in out
    assert "ARCHIVE: tpmain tpmain/tpmain_0.9.tar.gz TRUE TRUE \n" in out  # as remotes::install_version reads it
    assert (tmp_path / "lib" / "tpdep" / "DESCRIPTION").exists()


PRIVATE = r"""
lib <- Sys.getenv("LIB")
dir.create(lib, showWarnings = FALSE)
for (repo in c(Sys.getenv("IN_PATH"), Sys.getenv("IN_USERINFO"))) {
  ap <- available.packages(repos = repo, type = "source")
  cat("AVAILABLE:", rownames(ap), "\n")
}
install.packages("tpdep", repos = Sys.getenv("IN_USERINFO"), type = "source", lib = lib, quiet = TRUE)
cat("INSTALLED:", as.character(packageVersion("tpdep", lib.loc = lib)), "\n")
ap <- suppressWarnings(available.packages(repos = Sys.getenv("NO_TOKEN"), type = "source"))
cat("WITHOUT TOKEN:", nrow(ap), "\n")
"""


def test_r_uses_a_private_channel_with_its_token(taipan_server, r_packages, r_bin, tmp_path):
    ch = _channel(taipan_server, "private", [r_packages["tpdep"]])
    token = taipan_server.admin_token()
    host = f"127.0.0.1:{taipan_server.port}"
    out = run_r(r_bin, PRIVATE, tmp_path, LIB=str(tmp_path / "lib"), IN_PATH=f"http://{host}/api/repo/t/{token}/{ch}",
                IN_USERINFO=f"http://{token}:x-auth-token@{host}/api/repo/{ch}", NO_TOKEN=f"http://{host}/api/repo/{ch}")
    assert out.count("AVAILABLE: tpdep \n") == 2
    assert "INSTALLED: 1.0 \n" in out
    assert "WITHOUT TOKEN: 0 \n" in out
