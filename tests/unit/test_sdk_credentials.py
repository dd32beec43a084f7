"""Credentials precedence and the per-API-URL, mode-0600 credential files (DESIGN §6)."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mayfly.sdk import (
    LoginStore,
    SavedLogin,
    TemporaryAccount,
    TemporaryAccountCache,
    config_dir,
    resolve_credentials,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
API = "http://localhost:8787"


def account(name: str = "gaudy-flute", minutes: int = 30) -> TemporaryAccount:
    expires = NOW + timedelta(minutes=minutes)
    return TemporaryAccount(
        id="a" * 32,
        name=name,
        api_token="mft_cached",
        expires_at=expires,
        claim_url="http://localhost:8787/claim/x",
        claim_expires_at=expires,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_dir_follows_xdg_then_home(tmp_path: Path) -> None:
    assert config_dir({"XDG_CONFIG_HOME": str(tmp_path), "HOME": "/h"}) == tmp_path / "mayfly"
    assert config_dir({"XDG_CONFIG_HOME": "relative", "HOME": "/h"}) == Path("/h/.config/mayfly")
    assert config_dir({"HOME": "/h"}) == Path("/h/.config/mayfly")


def test_cache_file_is_private(tmp_path: Path) -> None:
    cache = TemporaryAccountCache(tmp_path / "mayfly")
    cache.save(API, account())
    assert mode(cache.path) == 0o600
    assert mode(cache.path.parent) == 0o700
    assert cache.load(API) == account()
    # Rewriting keeps the mode, and leaves no temporary files behind.
    cache.save(API, account("other-name"))
    assert mode(cache.path) == 0o600
    assert [p.name for p in cache.path.parent.iterdir()] == ["temporary-accounts.json"]


def test_cache_is_keyed_per_api_url(tmp_path: Path) -> None:
    cache = TemporaryAccountCache(tmp_path)
    cache.save("http://localhost:8787", account("first-one"))
    cache.save("http://127.0.0.1:9999", account("second-one"))
    loaded = cache.load("http://LOCALHOST:8787/client/v4/")  # the same server, spelled otherwise
    assert loaded is not None and loaded.name == "first-one"
    second = cache.load("http://127.0.0.1:9999")
    assert second is not None and second.name == "second-one"
    assert cache.load("http://localhost:1") is None
    data = json.loads(cache.path.read_text())
    assert set(data["accounts"]) == {"http://localhost:8787", "http://127.0.0.1:9999"}
    cache.drop("http://localhost:8787")
    assert cache.load("http://localhost:8787") is None
    assert cache.load("http://127.0.0.1:9999") is not None


def test_a_damaged_cache_is_ignored(tmp_path: Path) -> None:
    cache = TemporaryAccountCache(tmp_path)
    cache.path.write_text("{not json")
    assert cache.load(API) is None
    cache.path.write_text(json.dumps({"accounts": {API: {"id": "x"}}}))
    assert cache.load(API) is None
    cache.save(API, account())  # and is replaced by a good one
    assert cache.load(API) == account()


def resolve(tmp_path: Path, env: dict[str, str], flag: str | None = None):  # type: ignore[no-untyped-def]
    return resolve_credentials(API, now=NOW, flag_token=flag, environ=env, directory=tmp_path)


def test_precedence_flag_env_login_temporary(tmp_path: Path) -> None:
    TemporaryAccountCache(tmp_path).save(API, account())
    LoginStore(tmp_path).save(API, SavedLogin("mfp_login", "acc-login"))
    env = {"MAYFLY_API_TOKEN": "mfp_env", "MAYFLY_ACCOUNT_ID": "acc-env"}

    first = resolve(tmp_path, env, flag="mfp_flag").credentials
    assert first is not None
    assert (first.token, first.source, first.account_id) == ("mfp_flag", "--api-token", "acc-env")

    second = resolve(tmp_path, env).credentials
    assert second is not None
    assert (second.token, second.source, second.account_id) == (
        "mfp_env",
        "MAYFLY_API_TOKEN",
        "acc-env",
    )

    third = resolve(tmp_path, {}).credentials
    assert third is not None
    assert (third.token, third.source, third.account_id) == ("mfp_login", "login", "acc-login")

    LoginStore(tmp_path).path.unlink()
    fourth = resolve(tmp_path, {}).credentials
    assert fourth is not None
    assert (fourth.token, fourth.source, fourth.account_id) == ("mft_cached", "temporary", "a" * 32)
    assert fourth.temporary == account()


def test_login_store_is_private_and_per_url(tmp_path: Path) -> None:
    store = LoginStore(tmp_path)
    store.save(API, SavedLogin("mfp_x"))
    assert mode(store.path) == 0o600
    assert store.load(API) == SavedLogin("mfp_x", None)
    assert store.load("http://elsewhere:1") is None


def test_nothing_at_all(tmp_path: Path) -> None:
    resolution = resolve(tmp_path, {})
    assert resolution.credentials is None and resolution.expired is None


@pytest.mark.parametrize("minutes", [0, -5])
def test_an_expired_cached_account_is_reported_not_used(tmp_path: Path, minutes: int) -> None:
    TemporaryAccountCache(tmp_path).save(API, account(minutes=minutes))
    resolution = resolve(tmp_path, {})
    assert resolution.credentials is None
    assert resolution.expired is not None and resolution.expired.name == "gaudy-flute"


def test_an_expired_cache_does_not_hide_a_token(tmp_path: Path) -> None:
    TemporaryAccountCache(tmp_path).save(API, account(minutes=-5))
    credentials = resolve(tmp_path, {"MAYFLY_API_TOKEN": "mfp_env"}).credentials
    assert credentials is not None and credentials.source == "MAYFLY_API_TOKEN"


def test_drop_with_a_token_spares_a_newer_account(tmp_path: Path) -> None:
    cache = TemporaryAccountCache(tmp_path)
    cache.save(API, account())
    cache.drop(API, token="mft_some_older_token")
    assert cache.load(API) == account()
    cache.drop(API, token="mft_cached")
    assert cache.load(API) is None
    cache.drop(API)  # nothing to drop: no error
