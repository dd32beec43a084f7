"""The static assets of a project: the manifest wrangler would send (wrangler-assets.md §3).

Every file under `assets.directory`, symlinks followed and dotfiles included, keyed by `/` + its
relative path; minus `.assetsignore` matches (gitignore syntax) and the three root metafiles
`.assetsignore`, `_redirects` and `_headers`, whose text goes into the config instead. The hash is
wrangler's, `hex(BLAKE3(base64(bytes) + extension))[:32]`, so a file already uploaded by wrangler
to the same account is not uploaded again; the server treats it as an opaque key.
"""

from __future__ import annotations

import base64
import functools
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mayfly.project.config import Project
from mayfly.project.errors import ProjectError
from mayfly.project.resources import AssetsConfig

MAX_FILE_BYTES = 25 * 1024 * 1024
IGNORE_FILE = ".assetsignore"
METAFILES = frozenset({IGNORE_FILE, "_redirects", "_headers"})
NULL_CONTENT_TYPE = "application/null"
# What wrangler's `mime` package answers where Python's built-in table differs or has nothing.
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".cjs": "text/javascript",
    ".map": "application/json",
    ".md": "text/markdown",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".ico": "image/vnd.microsoft.icon",
    ".webmanifest": "application/manifest+json",
    ".xml": "text/xml",
    ".csv": "text/csv",
    ".wasm": "application/wasm",
    ".avif": "image/avif",
    ".webp": "image/webp",
}
if TYPE_CHECKING:
    import pathspec


@functools.cache
def _mime() -> mimetypes.MimeTypes:
    # Only the built-in table: the machine's /etc/mime.types must not change what is uploaded.
    return mimetypes.MimeTypes()


@dataclass(frozen=True)
class AssetFile:
    path: str  # the manifest key: "/" + the path relative to the asset directory
    source: Path
    hash: str
    size: int
    content_type: str  # "application/null" when unknown: served without a Content-Type


@dataclass(frozen=True)
class AssetManifest:
    directory: Path
    files: tuple[AssetFile, ...]
    config: dict[str, Any]
    binding: str | None
    ignored: int = 0

    def manifest(self) -> dict[str, dict[str, Any]]:
        """The AS1 body's `manifest`."""
        return {f.path: {"hash": f.hash, "size": f.size} for f in self.files}


def asset_hash(data: bytes, extension: str) -> str:
    """wrangler's: the first 32 hex digits of BLAKE3 over base64(data) + the extension (no dot)."""
    from blake3 import blake3  # imported when needed: most commands never hash an asset

    return blake3(base64.b64encode(data) + extension.encode()).hexdigest()[:32]


def content_type(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    found = CONTENT_TYPES.get(suffix) or _mime().guess_type("x" + suffix, strict=False)[0]
    if found is None:
        return NULL_CONTENT_TYPE
    return f"{found}; charset=utf-8" if found.startswith("text/") else found


def build_manifest(project: Project) -> AssetManifest | None:
    """The project's assets, hashed; None without an `[assets]` table. Raises ProjectError."""
    config = project.assets
    if config is None:
        return None
    directory = config.directory
    if not directory.exists():
        raise ProjectError.single(
            f"The assets directory {directory} does not exist (`assets.directory` in "
            f"{project.config_path.name if project.config_path else 'the configuration'})."
        )
    if not directory.is_dir():
        raise ProjectError.single(f"The assets directory {directory} is not a directory.")
    ignore, has_ignore_file = _ignore_spec(directory)
    files: list[AssetFile] = []
    ignored = 0
    for relative in _walk(directory):
        if relative in METAFILES:
            continue
        if ignore.match_file(relative):
            ignored += 1
            continue
        if relative.startswith("_worker.js") and not has_ignore_file:
            raise ProjectError.single(
                f"Uploading a Pages _worker.js file as an asset ({directory / relative}) could "
                "expose server-side code to the public. Add `_worker.js` to an .assetsignore "
                f"file in {directory} (or create an empty .assetsignore to upload it anyway)."
            )
        files.append(_asset(directory, relative))
    return AssetManifest(
        directory=directory,
        files=tuple(sorted(files, key=lambda f: f.path)),
        config=assets_config(config),
        binding=config.binding,
        ignored=ignored,
    )


def assets_config(config: AssetsConfig) -> dict[str, Any]:
    """`metadata.assets.config`: only the keys that are set, plus _redirects/_headers text."""
    out: dict[str, Any] = {}
    if config.html_handling is not None:
        out["html_handling"] = config.html_handling
    if config.not_found_handling is not None:
        out["not_found_handling"] = config.not_found_handling
    if config.base_path is not None:
        out["base_path"] = config.base_path
    if config.run_worker_first is not None:
        first = config.run_worker_first
        out["run_worker_first"] = first if isinstance(first, bool) else list(first)
    for name in ("_redirects", "_headers"):
        path = config.directory / name
        if path.is_file():
            out[name] = _text(path)
    return out


def _asset(directory: Path, relative: str) -> AssetFile:
    path = directory / relative
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ProjectError.single(
                f"Asset too large: {path} is {size} bytes; files are at most 25 MiB "
                f"({MAX_FILE_BYTES} bytes)."
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ProjectError.single(f"The asset {path} cannot be read: {exc}") from exc
    extension = PurePosixPath(relative).suffix[1:]
    return AssetFile(
        path="/" + relative,
        source=path,
        hash=asset_hash(data, extension),
        size=len(data),
        content_type=content_type(relative),
    )


def _walk(directory: Path) -> list[str]:
    """Relative POSIX paths of every file, following symlinks as wrangler does (a linked
    directory is listed under its link's name too), except into a loop."""
    found: list[str] = []
    for current, dirs, names in os.walk(directory, followlinks=True):
        base = Path(current).relative_to(directory)
        real = os.path.realpath(current)
        ancestors = [directory / Path(*base.parts[:n]) for n in range(len(base.parts))]
        if any(os.path.realpath(a) == real for a in ancestors):
            dirs.clear()  # a link back to one of its own parents
            continue
        for name in names:
            path = Path(current) / name
            if path.is_file():  # follows links; skips dangling ones, sockets and the like
                found.append((base / name).as_posix())
    return found


def _ignore_spec(directory: Path) -> tuple[pathspec.GitIgnoreSpec, bool]:
    import pathspec  # imported when needed (it takes longer to import than most commands run)

    path = directory / IGNORE_FILE
    if not path.is_file():
        return pathspec.GitIgnoreSpec.from_lines([]), False
    return pathspec.GitIgnoreSpec.from_lines(_text(path).splitlines()), True


def _text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError.single(
            f"{path} must be UTF-8 text without NUL characters ({exc})."
        ) from exc
    if "\x00" in text:
        raise ProjectError.single(f"{path} must be UTF-8 text without NUL characters.")
    return text
