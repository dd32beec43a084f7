"""Cloudflare's own asset-serving Workers, from the pinned npm package miniflare.

wrangler ships them inside miniflare (`dist/src/workers/assets/`, built from Cloudflare's
workers-shared): the asset-worker (html_handling, not_found_handling, redirects, ETags) and the
router-worker (run_worker_first, "can the assets serve this?"). The dispatcher runs both
unmodified, in its own isolate, with a per-version env (assets.js), so static assets are served
with Cloudflare's exact semantics. They are copied into the shards' runtime directory at startup,
never vendored: package-lock.json pins them together with workerd.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "MAYFLY_ASSET_WORKERS"

# module name in the dispatcher -> (file in the package directory, names assets.js imports)
MODULES = {
    "cloudflare-asset-worker.js": ("assets.worker.js", ("AssetWorkerInner",)),
    "cloudflare-router-worker.js": ("router.worker.js", ("RouterInnerEntrypoint",)),
}

_RELATIVE = Path("node_modules") / "miniflare" / "dist" / "src" / "workers" / "assets"


class AssetWorkersNotFound(RuntimeError):
    pass


def find_asset_workers(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding them: `explicit`, else $MAYFLY_ASSET_WORKERS, else
    node_modules/miniflare/dist/src/workers/assets in the current directory or any directory above
    this package (the repository's checkout), as workerd is found."""
    chosen = explicit or os.environ.get(ENV_VAR)
    candidates = (
        [Path(chosen)]
        if chosen
        else [root / _RELATIVE for root in (Path.cwd(), *Path(__file__).resolve().parents)]
    )
    for directory in candidates:
        if all((directory / file).is_file() for file, _ in MODULES.values()):
            return directory.resolve()
    where = chosen or f"{_RELATIVE} in the current directory or above the mayfly package"
    raise AssetWorkersNotFound(
        f"Cloudflare's asset workers not found ({where}); run `npm ci` in the checkout or set "
        f"{ENV_VAR}."
    )


def asset_worker_modules(directory: Path) -> dict[str, bytes]:
    """Module name -> source, checked to export what assets.js imports (a miniflare upgrade that
    renames them fails here, at startup, rather than in every shard)."""
    modules: dict[str, bytes] = {}
    for name, (file, exports) in MODULES.items():
        source = (directory / file).read_bytes()
        text = source.decode()
        if 'from "cloudflare:workers"' not in text:
            raise AssetWorkersNotFound(f"{directory / file} is not the expected Worker module.")
        export_list = text[text.rfind("export {") :]
        for export in exports:
            if export not in export_list:
                raise AssetWorkersNotFound(
                    f"{directory / file} does not export {export}; "
                    "is miniflare the version package-lock.json pins?"
                )
        modules[name] = source
    return modules
