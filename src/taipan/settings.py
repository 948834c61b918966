"""Typed settings. Read from the environment as TAIPAN_<SECTION>__<KEY>; nothing is read at import."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    return Path(user_data_dir("taipan", appauthor=False))


class DatabaseSettings(BaseModel):
    # Empty means SQLite at $TAIPAN_HOME/taipan.db.
    url: str = ""
    echo: bool = False


class StorageSettings(BaseModel):
    backend: Literal["filesystem", "s3"] = "filesystem"
    # filesystem: empty means $TAIPAN_HOME/blobs. s3: the local scratch space for spooling uploads
    # (empty: $TAIPAN_HOME/spool).
    path: str = ""
    # s3: bucket, key prefix, endpoint (for S3-compatible stores), region, credentials (else the
    # usual AWS environment / instance credentials), presigned URL lifetime.
    s3_bucket: str = ""
    s3_prefix: str = "blobs/"
    s3_endpoint_url: str = ""
    s3_region: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_presign_seconds: int = 300
    s3_create_bucket: bool = False


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8086
    # Public base URL used in file `url` fields; empty means derived from each request.
    base_url: str = ""
    max_upload_size: int = 2 * 1024**3
    # Every other request body (JSON, forms), counted as it is read; sign-in gets less.
    max_body_size: int = 1024**2
    max_login_body_size: int = 16 * 1024
    # The request line and headers together, and how many header fields (431 beyond).
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    workers: int = 1
    # The HTTP server of `taipan serve`: granian (sends whole files itself with the pathsend
    # extension; see docs/operations.md), or uvicorn.
    http_server: Literal["granian", "uvicorn"] = "granian"
    # How granian runs the application: "rsgi", its native interface (answers from memory and file
    # downloads skip the ASGI layer; see docs/operations.md), or "asgi", as uvicorn does.
    granian_interface: Literal["rsgi", "asgi"] = "rsgi"
    # The peers whose X-Forwarded-For / X-Forwarded-Proto are believed (the front proxy): comma-
    # separated addresses and networks, "*" for any, "" for none. The client address they name is
    # the one downloads record and sign-in throttling counts. Same default as uvicorn's.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    # Seconds `taipan serve` lets requests in flight finish after SIGTERM before closing them.
    graceful_shutdown: int = 5
    # Let a front proxy send artifact bytes after Taipan authorised the request: "x-accel-redirect"
    # (nginx: an internal location named by offload_prefix aliases the blob directory) or
    # "x-sendfile" (the blob's absolute path). Empty: Taipan sends the bytes itself.
    offload: Literal["", "x-accel-redirect", "x-sendfile"] = ""
    offload_prefix: str = "/_taipan_blobs/"
    # Index files (and their gzip coding) up to this many bytes are kept in memory once read, per
    # publication; larger ones (a big conda subdir's repodata.json) are streamed from the blob store.
    index_memory_limit: int = 16 * 1024**2
    # Bytes of CEP-16 shards each server process keeps in memory once read (the most recently read
    # stay); a shard beyond a sixteenth of it is read per request. 100k records make ~15 MB of shards.
    shard_cache_size: int = Field(default=16 * 1024**2, ge=0)
    # The C heap of each server process (glibc): at most this many malloc arenas (glibc allows 8 per
    # core, one per request thread that allocates; 0: glibc's default), and every this many seconds
    # the free pages of the heap are given back to the system (0: never). See docs/operations.md.
    malloc_arenas: int = Field(default=4, ge=0, le=64)
    malloc_trim_seconds: float = Field(default=10.0, ge=0)
    # Exit the process shortly after shutdown even if a request thread is still busy. Off only for
    # in-process test clients that share the interpreter.
    exit_watchdog: bool = False
    # Package serving answers from memory while its caches are fresh (credentials: the revocation log
    # looked at within half a second; channels and index publications: within a second). For what was
    # used within this many seconds, a background thread of each server process looks again shortly
    # before that runs out (a few tiny queries a second while clients are active, none when idle),
    # so a client that starts after a pause is answered from memory too. 0: never (each cache is
    # then looked at again by the first request that finds it stale).
    keep_fresh_seconds: float = Field(default=300.0, ge=0, le=86400)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network; give addresses and networks "
                                 "separated by commas (e.g. 127.0.0.1,10.0.0.0/8), or * for any peer") from None
        return value


class AuthSettings(BaseModel):
    session_hours: int = 12
    max_token_days: int = 366
    # After this many consecutive wrong passwords, each attempt must wait 2**(n - free) seconds.
    free_login_failures: int = 3
    max_login_delay: int = 300
    # The same back-off per client address, counting every failed password check from it (unknown
    # user names too); generous, because users behind one proxy or NAT share an address. An address
    # that has not failed for address_forget_seconds starts afresh.
    free_address_failures: int = 50
    address_forget_seconds: int = 3600
    # The default of the run-time setting of the same name (conda-repo admin --set ...).
    user_channel_autocreate: bool = True


class CveSettings(BaseModel):
    # The NVD CVE API 2.0 endpoint `taipan cve sync` reads (empty: no NVD sync).
    nvd_url: str = "https://services.nvd.nist.gov/rest/json/cves/2.0"
    # An NVD API key (higher rate limits); sent as the `apiKey` header, never logged.
    nvd_api_key: str = ""
    nvd_page_size: int = Field(default=2000, ge=1, le=2000)
    # OSV files to fetch (JSON advisories, lists, or osv.dev's per-ecosystem zips), e.g.
    # '["https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"]'.
    osv_urls: list[str] = []
    # When the scheduler runs `cve sync` (cron syntax, UTC); empty: only when run by hand.
    sync_cron: str = ""
    timeout: float = 60.0


class JobSettings(BaseModel):
    backend: str = "inprocess"  # inprocess | redis
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "taipan"
    scheduler: bool = True
    # How often the cron scheduler looks for due mirrors.
    tick_seconds: float = 20.0


class MirrorSettings(BaseModel):
    # Mirrors fetch only from public addresses; these networks (CIDRs, e.g. ["10.0.0.0/8",
    # "127.0.0.0/8", "::1/128"]) are allowed too. Checked after DNS resolution, on every redirect hop.
    allowed_networks: list[str] = []


class SecretsSettings(BaseModel):
    # The Fernet key (urlsafe base64, 32 bytes) that encrypts stored secrets such as mirror upstream
    # credentials. Empty: one is generated once into $TAIPAN_HOME/secret.key (0600). Set it when
    # several hosts share one database.
    key: str = ""


class ObservabilitySettings(BaseModel):
    # /metrics without credentials (it carries no channel, package or user names).
    metrics_public: bool = False
    # One JSON object per log line, with the request id.
    json_logs: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAIPAN_", env_nested_delimiter="__", extra="ignore")

    home: Path = Field(default_factory=default_home)
    admin_username: str = "admin"
    admin_password: str = ""
    database: DatabaseSettings = DatabaseSettings()
    storage: StorageSettings = StorageSettings()
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    jobs: JobSettings = JobSettings()
    mirrors: MirrorSettings = MirrorSettings()
    secrets: SecretsSettings = SecretsSettings()
    cve: CveSettings = CveSettings()
    observability: ObservabilitySettings = ObservabilitySettings()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.home / 'taipan.db'}"

    @property
    def blob_path(self) -> Path:
        return Path(self.storage.path) if self.storage.path else self.home / "blobs"
