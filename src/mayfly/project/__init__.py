"""The project on disk: wrangler.toml / .json / .jsonc → a Project, and the modules to upload.

Client side only: imports nothing server-side (an import-linter contract checks it).
"""

from mayfly.project.config import (
    CONFIG_FILES,
    Diagnostic,
    Project,
    ProjectError,
    find_config,
    load_project,
    read_config,
)
from mayfly.project.modules import Collector, ModuleSet, SourceModule, collect_modules

__all__ = [
    "CONFIG_FILES",
    "Collector",
    "Diagnostic",
    "ModuleSet",
    "Project",
    "ProjectError",
    "SourceModule",
    "collect_modules",
    "find_config",
    "load_project",
    "read_config",
]
