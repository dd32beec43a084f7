"""--workers-url: the Worker URLs the API prints come from the cluster setting, not the local
Workers port."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.settings import Settings, load_settings
from tests.conftest import auth, make_settings, provision, upload_body


def test_default_is_the_local_workers_port() -> None:
    settings = Settings(workers_port=9999)
    assert settings.worker_url("hi", "acme") == "http://hi.acme.localhost:9999"


def test_a_base_url_means_its_subdomains() -> None:
    settings = Settings(workers_url="https://example.com/", workers_port=9999)
    assert settings.worker_url("hi", "acme") == "https://hi.acme.example.com"


def test_a_template_names_script_and_account() -> None:
    settings = load_settings({}, {"MAYFLY_WORKERS_URL": "https://{account}--{script}.w.example"})
    assert settings.worker_url("hi", "acme") == "https://acme--hi.w.example"


@pytest.mark.parametrize("bad", ["example.com", "https://{script}.example.com"])
def test_bad_workers_urls_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="workers_url"):
        Settings(workers_url=bad)


def test_deploy_output_uses_the_workers_url(tmp_path: Path) -> None:
    platform = Platform.create(make_settings(tmp_path, workers_url="https://workers.example.org"))
    try:
        with TestClient(platform.public_app(), base_url="http://testserver/client/v4/") as api:
            account = provision(api)["account"]
            deployed = api.put(
                f"accounts/{account['id']}/workers/scripts/hi",
                headers=auth(account["apiToken"]),
                **upload_body(),
            )
            assert deployed.status_code == 200, deployed.text
            url = f"https://hi.{account['name']}.workers.example.org"
            assert deployed.json()["result"]["url"] == url
    finally:
        platform.db.dispose()
