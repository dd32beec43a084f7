"""Typed results of the Worker-level API calls the SDK makes: uploads and what they deploy,
versions, deployments, KV, secrets, tails. (The account-level ones are in models.py, which commands
such as `mayfly whoami` import without these.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mayfly.sdk.models import JS_MODULE, AccountInfo, TemporaryAccount


@dataclass(frozen=True)
class UploadModule:
    """One part of a Worker upload: the module's name is its path inside the upload."""

    name: str
    data: bytes
    content_type: str = JS_MODULE


@dataclass(frozen=True)
class WorkerUpload:
    """Everything a version is made of. `main_module` is None for an assets-only Worker."""

    main_module: str | None
    modules: tuple[UploadModule, ...]
    compatibility_date: str | None = None
    compatibility_flags: tuple[str, ...] = ()
    bindings: tuple[dict[str, Any], ...] = ()
    # Secrets set with `secret put` survive a deploy that does not mention them.
    keep_bindings: tuple[str, ...] = ("secret_text", "secret_key")
    annotations: dict[str, str] = field(default_factory=dict)
    # metadata.assets: {"jwt": <completion token>, "config": {...}}, set once the assets are up.
    assets: dict[str, Any] | None = None

    @property
    def size(self) -> int:
        return sum(len(m.data) for m in self.modules)

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if self.main_module is not None:
            meta["main_module"] = self.main_module
            meta["bindings"] = list(self.bindings)
            meta["keep_bindings"] = list(self.keep_bindings)
        if self.assets is not None:
            meta["assets"] = self.assets
        if self.compatibility_date:
            meta["compatibility_date"] = self.compatibility_date
        if self.compatibility_flags:
            meta["compatibility_flags"] = list(self.compatibility_flags)
        if self.annotations:
            meta["annotations"] = dict(self.annotations)
        return meta


@dataclass(frozen=True)
class KVBinding:
    """A KV binding to deploy with; without `id` the deploy finds or creates its namespace."""

    binding: str
    id: str | None = None


@dataclass(frozen=True)
class AssetSource:
    """One static asset: its manifest path, wrangler's hash, and the file to read it from."""

    path: str
    hash: str
    size: int
    content_type: str
    source: Path


@dataclass(frozen=True)
class AssetUpload:
    """The static assets to deploy with: every file, `metadata.assets.config`, the binding name."""

    files: tuple[AssetSource, ...]
    config: dict[str, Any] = field(default_factory=dict)
    binding: str | None = None

    def manifest(self) -> dict[str, dict[str, Any]]:
        return {f.path: {"hash": f.hash, "size": f.size} for f in self.files}


@dataclass(frozen=True)
class ProvisionedNamespace:
    """The namespace a KV binding got at deploy: given, reused (found by title) or created."""

    binding: str
    id: str
    title: str | None
    state: Literal["configured", "existing", "created"]


@dataclass(frozen=True)
class AssetsUploaded:
    files: int
    uploaded: int
    # Manifest entries not uploaded this time: the server had them (or another path shares one).
    already_uploaded: int


@dataclass(frozen=True)
class WorkerVersion:
    id: str
    number: int | None = None
    created_on: str | None = None
    author_email: str | None = None
    source: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    handlers: tuple[str, ...] = ()
    compatibility_date: str | None = None
    compatibility_flags: tuple[str, ...] = ()
    bindings: tuple[dict[str, Any], ...] = ()

    @property
    def message(self) -> str | None:
        return self.annotations.get("workers/message")

    @property
    def tag(self) -> str | None:
        return self.annotations.get("workers/tag")

    @property
    def triggered_by(self) -> str | None:
        return self.annotations.get("workers/triggered_by")


@dataclass(frozen=True)
class WorkerDeployment:
    id: str
    created_on: str | None = None
    author_email: str | None = None
    source: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    versions: tuple[tuple[str, int], ...] = ()  # (version_id, percentage)

    @property
    def message(self) -> str | None:
        return self.annotations.get("workers/message")

    @property
    def version_id(self) -> str | None:
        """The version serving all traffic (Mayfly deploys one version at 100%)."""
        for version_id, percentage in self.versions:
            if percentage == 100:
                return version_id
        return None


@dataclass(frozen=True)
class KVNamespaceInfo:
    id: str
    title: str


@dataclass(frozen=True)
class KVKey:
    name: str
    expiration: int | None = None
    metadata: Any = None


@dataclass(frozen=True)
class SecretInfo:
    name: str
    type: str


@dataclass(frozen=True)
class TailInfo:
    """A tail session: the WebSocket URL is its only credential."""

    id: str
    url: str
    expires_at: str | None


@dataclass(frozen=True)
class UploadResult:
    version_id: str
    messages: tuple[str, ...] = ()
    url: str | None = None


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    url: str | None
    enabled: bool


@dataclass(frozen=True)
class Deployment:
    """The outcome of a deploy: where the Worker lives and which account it went into."""

    script: str
    version_id: str
    url: str | None
    account: AccountInfo
    messages: tuple[str, ...] = ()
    temporary: TemporaryAccount | None = None
    created_account: bool = False
    notices: tuple[str, ...] = field(default=())
    kv_namespaces: tuple[ProvisionedNamespace, ...] = ()
    assets: AssetsUploaded | None = None
    crons: tuple[str, ...] | None = None  # the cron triggers set with it (None: left as they were)
