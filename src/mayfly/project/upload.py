"""A loaded project as the SDK deploys it: its modules and bindings (a WorkerUpload), its static
assets (an AssetUpload) and the rest Deployer.deploy takes; `mayfly deploy` and the MCP deploy
tool both send these."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from mayfly.project.assets import AssetManifest
from mayfly.project.config import Project
from mayfly.project.modules import ModuleSet
from mayfly.sdk import AssetSource, AssetUpload, KVBinding, UploadModule, WorkerUpload


def worker_upload(
    project: Project, modules: ModuleSet | None, bindings: list[dict[str, Any]] | None = None
) -> WorkerUpload:
    """The project's modules (none for an assets-only Worker) with `bindings` (default: the
    project's own)."""
    return WorkerUpload(
        main_module=modules.main if modules is not None else None,
        modules=tuple(UploadModule(m.name, m.data, m.content_type) for m in modules.modules)
        if modules is not None
        else (),
        compatibility_date=project.compatibility_date,
        compatibility_flags=project.compatibility_flags,
        bindings=tuple(project.bindings() if bindings is None else bindings),
    )


def asset_upload(manifest: AssetManifest) -> AssetUpload:
    return AssetUpload(
        files=tuple(
            AssetSource(f.path, f.hash, f.size, f.content_type, f.source) for f in manifest.files
        ),
        config=manifest.config,
        binding=manifest.binding,
    )


class DeployOptions(TypedDict):
    account_id: str | None
    kv: Sequence[KVBinding]
    assets: AssetUpload | None
    crons: Sequence[str] | None


def deploy_options(project: Project, manifest: AssetManifest | None) -> DeployOptions:
    """What Deployer.deploy takes from the project besides its upload: the account it names, its
    KV bindings (created when missing), its assets and its cron triggers."""
    return {
        "account_id": project.account_id,
        "kv": [KVBinding(k.binding, k.id) for k in project.kv_namespaces],
        "assets": asset_upload(manifest) if manifest is not None else None,
        "crons": project.crons,
    }
