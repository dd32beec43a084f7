"""Inline `files` from a remote agent made a project on disk, and what the remote server refuses
in a project (files outside it, bundling)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from mayfly.mcp.core import MAX_FILES, ToolFailure
from mayfly.project import (
    CONFIG_FILES,
    ModuleSet,
    Project,
)


def write_files(root: Path, files: Mapping[str, str]) -> None:
    if not files:
        raise ToolFailure("`files` is empty: pass at least the entry module.")
    if len(files) > MAX_FILES:
        raise ToolFailure(f"`files` has {len(files)} entries; at most {MAX_FILES}.")
    for name, content in files.items():
        relative = PurePosixPath(name)
        if (
            not name
            or relative.is_absolute()
            or ".." in relative.parts
            or "\\" in name
            or "\0" in name
        ):
            raise ToolFailure(
                f"The file name {name!r} must be a relative path inside the project "
                "(no leading /, no ..).",
                code="invalid_file_name",
            )
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def files_target(
    files: Mapping[str, str], name: str | None, main: str | None
) -> tuple[str | None, str | None]:
    """`name` and `main` for inline files: the configuration's when one is among them, else
    the arguments (default name `worker`, default entry the one script or an index.*)."""
    if any(n in CONFIG_FILES for n in files):
        return name, main
    main = main or _guess_main(files)
    if main is None:
        raise ToolFailure(
            "Which module is the entry? Pass `main` (one of `files`), or a wrangler.toml / "
            "wrangler.json among `files` that names it.",
            code="project_invalid",
        )
    return name or "worker", main


def confine(project: Project) -> None:
    """A remote agent's project reads nothing outside its temporary directory (modules are
    confined by the project reader; the assets directory is checked here)."""
    root = project.root.resolve()
    if project.assets is not None and not project.assets.directory.resolve().is_relative_to(root):
        raise ToolFailure(
            "`assets.directory` must be a folder among `files`.", code="project_invalid"
        )


def no_bundling(project: Project) -> ModuleSet:
    raise ToolFailure(
        f"{project.main} needs bundling (TypeScript, JSX or an npm import), which the remote MCP "
        "server does not do: send plain JavaScript modules (bundle locally, or use `mayfly mcp` "
        "on your machine).",
        code="bundling_unavailable",
    )


def _guess_main(files: Mapping[str, str]) -> str | None:
    for candidate in ("src/index.ts", "src/index.js", "index.ts", "index.js", "worker.js"):
        if candidate in files:
            return candidate
    scripts = [n for n in files if n.endswith((".js", ".mjs", ".ts"))]
    return scripts[0] if len(scripts) == 1 else None
