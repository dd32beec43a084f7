"""The project on disk: wrangler.toml / .json / .jsonc → a Project, and what to upload: its modules
(bundled with esbuild when needed), its static assets and its .dev.vars.

Client side only: imports nothing server-side (an import-linter contract checks it).
"""

from typing import TYPE_CHECKING

from mayfly.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from mayfly.project.assets import AssetFile, AssetManifest, asset_hash, build_manifest
    from mayfly.project.bundle import (
        BundleFailed,
        BundlerMissing,
        build_modules,
        bundle_with_esbuild,
        find_esbuild,
    )
    from mayfly.project.config import CONFIG_FILES, Project, find_config, load_project, read_config
    from mayfly.project.dev_vars import DevVars, parse_dotenv, read_dev_vars
    from mayfly.project.errors import Diagnostic, ProjectError
    from mayfly.project.modules import (
        Collector,
        ModuleSet,
        NeedsBundling,
        SourceModule,
        collect_modules,
    )
    from mayfly.project.resources import AssetsConfig, KVNamespace

# Each name is imported from its module on first use (mayfly/lazy_exports.py).
__getattr__, __dir__ = lazy_exports(
    __name__,
    globals(),
    {
        "assets": ("AssetFile", "AssetManifest", "asset_hash", "build_manifest"),
        "bundle": (
            "BundleFailed",
            "BundlerMissing",
            "build_modules",
            "bundle_with_esbuild",
            "find_esbuild",
        ),
        "config": ("CONFIG_FILES", "Project", "find_config", "load_project", "read_config"),
        "dev_vars": ("DevVars", "parse_dotenv", "read_dev_vars"),
        "errors": ("Diagnostic", "ProjectError"),
        "modules": ("Collector", "ModuleSet", "NeedsBundling", "SourceModule", "collect_modules"),
        "resources": ("AssetsConfig", "KVNamespace"),
    },
)

__all__ = [
    "CONFIG_FILES",
    "AssetFile",
    "AssetManifest",
    "AssetsConfig",
    "BundleFailed",
    "BundlerMissing",
    "Collector",
    "DevVars",
    "Diagnostic",
    "KVNamespace",
    "ModuleSet",
    "NeedsBundling",
    "Project",
    "ProjectError",
    "SourceModule",
    "asset_hash",
    "build_manifest",
    "build_modules",
    "bundle_with_esbuild",
    "collect_modules",
    "find_config",
    "find_esbuild",
    "load_project",
    "parse_dotenv",
    "read_config",
    "read_dev_vars",
]
