"""The server's settings as one typed object: flag > MAYFLY_* environment variable > default.

Each is declared once, in settings_table/ (name, default, help, parser); the Settings dataclass
types them and takes its defaults from there. The CLI builds its `serve` options from SETTINGS
(and so docs/cli.md, generated from the CLI by `python -m mayfly.cli.docs`), and a test fails when
a setting has no help text or no field.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mayfly.settings_table import SETTINGS, Setting, default

__all__ = ["SETTINGS", "Setting", "Settings", "load_settings"]


_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    host: str = default("host")
    api_port: int = default("api_port")
    workers_port: int = default("workers_port")
    public_url: str = default("public_url")
    domain: str = default("domain")
    workers_url: str = default("workers_url")
    data_dir: Path = field(default_factory=lambda: Path(default("data_dir")))
    database_url: str = default("database_url")
    secret_key: str = default("secret_key")
    temporary_ttl: int = default("temporary_ttl")
    extension_seconds: int = default("extension_seconds")
    extensions_max: int = default("extensions_max")
    extension_max_lifetime: int = default("extension_max_lifetime")
    tombstone_cooldown: int = default("tombstone_cooldown")
    audit_retention: int = default("audit_retention")
    reaper_interval: float = default("reaper_interval")
    cron_tick: float = default("cron_tick")
    cron_min_interval: int = default("cron_min_interval")
    pow_k: int = default("pow_k")
    pow_g: int = default("pow_g")
    pow_adaptive: bool = default("pow_adaptive")
    pow_min_work: int = default("pow_min_work")
    pow_pressure_window: int = default("pow_pressure_window")
    pow_busy_platform: int = default("pow_busy_platform")
    pow_busy_address: int = default("pow_busy_address")
    pow_samples: int = default("pow_samples")
    challenge_ttl: int = default("challenge_ttl")
    challenges_per_minute: int = default("challenges_per_minute")
    accounts_per_hour: int = default("accounts_per_hour")
    address_taint_seconds: float = default("address_taint_seconds")
    tainted_accounts_per_hour: int = default("tainted_accounts_per_hour")
    max_live_temporary: int = default("max_live_temporary")
    max_upload_bytes: int = default("max_upload_bytes")
    quota_bytes_temporary: int = default("quota_bytes_temporary")
    quota_bytes_permanent: int = default("quota_bytes_permanent")
    quota_versions_temporary: int = default("quota_versions_temporary")
    quota_versions_permanent: int = default("quota_versions_permanent")
    quota_workers_temporary: int = default("quota_workers_temporary")
    quota_workers_permanent: int = default("quota_workers_permanent")
    quota_kv_namespaces_temporary: int = default("quota_kv_namespaces_temporary")
    quota_kv_namespaces_permanent: int = default("quota_kv_namespaces_permanent")
    quota_kv_keys_temporary: int = default("quota_kv_keys_temporary")
    quota_kv_keys_permanent: int = default("quota_kv_keys_permanent")
    quota_asset_files_temporary: int = default("quota_asset_files_temporary")
    quota_asset_files_permanent: int = default("quota_asset_files_permanent")
    quota_d1_databases_temporary: int = default("quota_d1_databases_temporary")
    quota_d1_databases_permanent: int = default("quota_d1_databases_permanent")
    d1_max_database_bytes_temporary: int = default("d1_max_database_bytes_temporary")
    d1_max_database_bytes_permanent: int = default("d1_max_database_bytes_permanent")
    d1_query_timeout_ms_temporary: int = default("d1_query_timeout_ms_temporary")
    d1_query_timeout_ms_permanent: int = default("d1_query_timeout_ms_permanent")
    max_kv_value_bytes: int = default("max_kv_value_bytes")
    max_r2_object_bytes: int = default("max_r2_object_bytes")
    r2_uploads_per_account: int = default("r2_uploads_per_account")
    r2_upload_memory_bytes: int = default("r2_upload_memory_bytes")
    quota_r2_buckets_temporary: int = default("quota_r2_buckets_temporary")
    quota_r2_buckets_permanent: int = default("quota_r2_buckets_permanent")
    max_json_body_bytes: int = default("max_json_body_bytes")
    max_manifest_body_bytes: int = default("max_manifest_body_bytes")
    max_asset_body_bytes: int = default("max_asset_body_bytes")
    max_kv_bulk_bytes: int = default("max_kv_bulk_bytes")
    max_kv_bulk_items: int = default("max_kv_bulk_items")
    max_form_body_bytes: int = default("max_form_body_bytes")
    terms_url: str = default("terms_url")
    privacy_url: str = default("privacy_url")
    forwarded_allow_ips: str = default("forwarded_allow_ips")
    connections_per_address: int = default("connections_per_address")
    request_head_timeout: float = default("request_head_timeout")
    signups_per_hour: int = default("signups_per_hour")
    signups_per_minute_total: int = default("signups_per_minute_total")
    logins_per_minute: int = default("logins_per_minute")
    logins_per_minute_total: int = default("logins_per_minute_total")
    login_failures_per_email: int = default("login_failures_per_email")
    login_failures_per_address: int = default("login_failures_per_address")
    device_codes_per_hour: int = default("device_codes_per_hour")
    device_codes_per_minute_total: int = default("device_codes_per_minute_total")
    password_hash_threads: int = default("password_hash_threads")
    password_hash_queue: int = default("password_hash_queue")
    shards: int = default("shards")
    shard_memory: int = default("shard_memory")
    shard_memory_ceiling: int = default("shard_memory_ceiling")
    shard_isolates: int = default("shard_isolates")
    cpu_limit_ms: int = default("cpu_limit_ms")
    request_timeout: float = default("request_timeout")
    wait_until_limit: float = default("wait_until_limit")
    subrequests: int = default("subrequests")
    outbound_connections: int = default("outbound_connections")
    account_outbound_connections: int = default("account_outbound_connections")
    shard_outbound_connections: int = default("shard_outbound_connections")
    quarantine_cooldown: float = default("quarantine_cooldown")
    quarantine_max: float = default("quarantine_max")
    quarantine_decay: float = default("quarantine_decay")
    quarantine_window: float = default("quarantine_window")
    quarantine_account_workers: int = default("quarantine_account_workers")
    quarantine_account_window: float = default("quarantine_account_window")
    quarantine_account_cooldown: float = default("quarantine_account_cooldown")
    quarantine_account_max: float = default("quarantine_account_max")
    runtime: bool = default("runtime")
    role: str = default("role")
    cluster_secret: str = default("cluster_secret")
    internal_listen: str = default("internal_listen")
    control_plane_url: str = default("control_plane_url")
    ack_timeout: float = default("ack_timeout")
    log_level: str = default("log_level")
    log_format: str = default("log_format")
    metrics_port: int = default("metrics_port")

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if not self.public_url:
            object.__setattr__(self, "public_url", f"http://localhost:{self.api_port}")
        object.__setattr__(self, "public_url", self.public_url.rstrip("/"))
        if not self.database_url:
            db = (self.data_dir / "mayfly.db").absolute()
            object.__setattr__(self, "database_url", f"sqlite:///{db}")
        _check_workers_url(self.workers_url)
        if self.log_format not in ("text", "json"):
            raise ValueError(f"log_format {self.log_format!r}: text or json")
        _check_role(self)

    @property
    def serves_api(self) -> bool:
        return self.role in ("all", "api")

    @property
    def runs_data_plane(self) -> bool:
        return self.runtime and self.role in ("all", "dataplane")

    @property
    def workers_url_suffix(self) -> str:
        """The part of a Worker URL after the script and account names."""
        port = "" if self.workers_port == 80 else f":{self.workers_port}"
        return f"{self.domain}{port}"

    def worker_url(self, script: str, account: str) -> str:
        """Where users reach a Worker (a proxy may stand between them and the Workers port)."""
        if not self.workers_url:
            return f"http://{script}.{account}.{self.workers_url_suffix}"
        if "{script}" in self.workers_url:
            return self.workers_url.replace("{script}", script).replace("{account}", account)
        scheme, _, rest = self.workers_url.partition("://")
        return f"{scheme}://{script}.{account}.{rest.split('/', 1)[0]}"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _check_workers_url(url: str) -> None:
    if not url:
        return
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"workers_url {url!r}: must start with http:// or https://")
    if ("{script}" in url) != ("{account}" in url):
        raise ValueError(f"workers_url {url!r}: a template names both {{script}} and {{account}}")


def _check_role(s: Settings) -> None:
    if s.role not in ("all", "api", "dataplane"):
        raise ValueError(f"role {s.role!r}: all, api or dataplane")
    if s.internal_listen:
        host, _, port = s.internal_listen.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"internal_listen {s.internal_listen!r}: host:port")
        if not s.cluster_secret:
            raise ValueError("internal_listen needs cluster_secret (data-plane nodes present it)")
    if s.role == "dataplane" and (
        not s.control_plane_url.startswith("http://") or not s.cluster_secret
    ):
        raise ValueError(
            "role dataplane needs control_plane_url (http://host:port of the internal API) "
            "and cluster_secret"
        )
    if s.role == "dataplane" and not s.database_url.startswith("postgresql"):
        raise ValueError(
            "role dataplane needs the cluster's PostgreSQL database_url (invalidations reach "
            "data-plane nodes through it)"
        )


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from explicit overrides (flags), then MAYFLY_* variables, then defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env_var)
        if raw is not None and raw != "":
            try:
                values[setting.name] = setting.parse(raw)
            except ValueError as exc:
                raise ValueError(f"{setting.env_var}={raw!r}: {exc}") from exc
    for name, value in (overrides or {}).items():
        if name not in _BY_NAME:
            raise KeyError(f"unknown setting {name!r}")
        if value is not None:
            values[name] = value
    return Settings(**values)
