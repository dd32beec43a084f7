"""Cloudflare's asset-serving Workers: found in the pinned miniflare package, checked, and embedded
in the shard config as modules of the dispatcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from mayfly.runtime.asset_workers import (
    ENV_VAR,
    MODULES,
    AssetWorkersNotFound,
    asset_worker_modules,
    find_asset_workers,
)
from mayfly.runtime.config import DispatcherSettings, render_config
from tests.conftest import missing


def installed() -> Path:
    """The checkout's copy (`npm ci`); skipped without one, except in CI."""
    try:
        return find_asset_workers()
    except AssetWorkersNotFound as exc:
        missing(str(exc))


def test_they_are_found_in_the_checkout_and_export_what_assets_js_imports() -> None:
    directory = installed()
    assert directory.parts[-5:] == ("miniflare", "dist", "src", "workers", "assets")
    modules = asset_worker_modules(directory)
    assert set(modules) == {"cloudflare-asset-worker.js", "cloudflare-router-worker.js"}
    # They import nothing the dispatcher does not have.
    for source in modules.values():
        imports = [line for line in source.decode().splitlines() if line.startswith("import ")]
        assert imports == ['import { WorkerEntrypoint } from "cloudflare:workers";']


def test_an_explicit_directory_wins_and_must_hold_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(AssetWorkersNotFound, match=ENV_VAR):
        find_asset_workers()
    for file, _ in MODULES.values():
        (tmp_path / file).write_text("")
    assert find_asset_workers() == tmp_path.resolve()


def test_a_renamed_export_fails_at_startup(tmp_path: Path) -> None:
    real = installed()
    for file, _ in MODULES.values():
        (tmp_path / file).write_bytes((real / file).read_bytes())
    router = tmp_path / "router.worker.js"
    router.write_text(router.read_text().replace("RouterInnerEntrypoint", "RouterInner"))
    with pytest.raises(AssetWorkersNotFound, match="does not export RouterInnerEntrypoint"):
        asset_worker_modules(tmp_path)


def test_the_shard_config_embeds_them_beside_assets_js() -> None:
    config = render_config("127.0.0.1:4242", DispatcherSettings(1, 1, 1, 1))
    for module in ("assets.js", *MODULES):
        assert f'(name = "{module}", esModule = embed "{module}")' in config
