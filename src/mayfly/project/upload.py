"""A loaded project as the SDK uploads it: its modules and bindings (a WorkerUpload) and its
static assets (an AssetUpload); `mayfly deploy` and the MCP deploy tool both send these."""

from __future__ import annotations

from typing import Any

from mayfly.project.assets import AssetManifest
from mayfly.project.config import Project
from mayfly.project.modules import ModuleSet
from mayfly.sdk import AssetSource, AssetUpload, UploadModule, WorkerUpload


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
