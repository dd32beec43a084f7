"""Workers KV with the real wrangler (spec §5.5, §5.8) against `mayfly serve` with its data plane:
namespaces, keys (URL-encoded names, metadata, TTL), KV bindings with an id and auto-provisioned,
and the real effect: what wrangler writes the deployed Worker reads, and the other way round."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import MayflyServer, WranglerResult, WranglerUser, run_wrangler
from tests.compat.data_plane import kv_worker, request_worker, temporary_account_name

pytestmark = [
    pytest.mark.compat,
    pytest.mark.parametrize("mayfly_server", [True], indirect=True),
]

WORKER = "kv-worker"
ODD_KEY = "dir/a b?c#d%e"  # wrangler sends it as dir%2Fa%20b%3Fc%23d%25e (spec §3.5)
NAMESPACE_ID = re.compile(r'id = "([0-9a-f]{32})"')


@dataclass
class Anon:
    """A wrangler user without credentials: every command runs with --temporary."""

    server: MayflyServer
    user: WranglerUser
    project: Path

    def wrangler(self, *args: str, stdin: str | None = None) -> WranglerResult:
        return run_wrangler(
            [*args, "--temporary"], self.project, self.server.env(), self.user, stdin=stdin
        )

    def kv_key(self, command: str, namespace_id: str, *args: str) -> WranglerResult:
        return self.wrangler(
            "kv", "key", command, "--namespace-id", namespace_id, *args, "--remote"
        )

    def worker(self, path: str, **params: str) -> str:
        response = request_worker(
            self.server, temporary_account_name(self.user), WORKER, path, **params
        )
        assert response.status_code == 200, response.text
        return response.text


@pytest.fixture(scope="module")
def anon(mayfly_server: MayflyServer, new_user: Any, new_project: Any) -> Anon:
    # The project's binding is filled in once the namespace exists (see `deployed`).
    return Anon(mayfly_server, new_user("kv-anon"), new_project("kv-worker"))


@pytest.fixture(scope="module")
def created(anon: Anon) -> WranglerResult:
    return anon.wrangler("kv", "namespace", "create", "CACHE")


@pytest.fixture(scope="module")
def namespace_id(created: WranglerResult) -> str:
    found = NAMESPACE_ID.search(created.stdout)
    assert found, f"no namespace id printed\n{created}"
    return found.group(1)


@pytest.fixture(scope="module")
def written(anon: Anon, namespace_id: str) -> None:
    """Keys wrangler wrote before the Worker is deployed."""
    odd = anon.kv_key("put", namespace_id, ODD_KEY, "v1")
    assert odd.exit_code == 0, str(odd)
    assert f'Writing the value "v1" to key "{ODD_KEY}" on namespace id: "{namespace_id}".' in (
        odd.stdout
    ), str(odd)
    meta = anon.kv_key("put", namespace_id, "k2", "v2", "--metadata", '{"a":1}', "--ttl", "3600")
    assert meta.exit_code == 0, str(meta)
    assert 'with metadata "{"a":1}"' in meta.stdout, str(meta)


@pytest.fixture(scope="module")
def deployed(anon: Anon, namespace_id: str, written: None) -> WranglerResult:
    config = anon.project / "wrangler.toml"
    config.write_text(config.read_text().replace("NAMESPACE_ID", namespace_id))
    result = anon.wrangler("deploy")
    assert result.exit_code == 0, str(result)
    return result


def test_kv_namespace_create(created: WranglerResult, namespace_id: str) -> None:
    assert created.exit_code == 0, str(created)
    assert "Resource location: remote" in created.stdout
    assert 'Creating namespace with title "CACHE"' in created.stdout, str(created)
    assert "Success!" in created.stdout
    assert '[[kv_namespaces]]\nbinding = "CACHE"' in created.stdout


def test_kv_namespace_create_twice_says_it_exists(anon: Anon, created: WranglerResult) -> None:
    again = anon.wrangler("kv", "namespace", "create", "CACHE")
    assert again.exit_code == 1, str(again)
    assert 'A KV namespace with the title "CACHE" already exists.' in again.stderr, str(again)


def test_kv_namespace_list(anon: Anon, namespace_id: str) -> None:
    listed = anon.wrangler("kv", "namespace", "list")
    assert listed.exit_code == 0, str(listed)
    namespaces = json.loads(listed.stdout)
    assert {"id": namespace_id, "title": "CACHE"}.items() <= namespaces[0].items(), namespaces
    assert len(namespaces) == 1


def test_kv_key_get_of_an_url_encoded_name(anon: Anon, namespace_id: str, written: None) -> None:
    got = anon.kv_key("get", namespace_id, ODD_KEY)
    assert got.exit_code == 0, str(got)
    assert got.stdout == "v1", str(got)


def test_kv_key_list_with_metadata_ttl_and_prefix(
    anon: Anon, namespace_id: str, written: None
) -> None:
    listed = anon.kv_key("list", namespace_id)
    assert listed.exit_code == 0, str(listed)
    keys = {k["name"]: k for k in json.loads(listed.stdout)}
    assert keys[ODD_KEY] == {"name": ODD_KEY}
    assert keys["k2"]["metadata"] == {"a": 1}
    assert abs(keys["k2"]["expiration"] - (time.time() + 3600)) < 120
    prefixed = anon.kv_key("list", namespace_id, "--prefix", "dir/")
    assert prefixed.exit_code == 0, str(prefixed)
    assert [k["name"] for k in json.loads(prefixed.stdout)] == [ODD_KEY]


def test_deploy_with_a_kv_binding(deployed: WranglerResult, namespace_id: str) -> None:
    assert re.search(rf"env\.CACHE \({namespace_id}\)\s+KV Namespace", deployed.stdout), str(
        deployed
    )
    assert f"Uploaded {WORKER}" in deployed.stdout


def test_the_worker_reads_what_wrangler_wrote(anon: Anon, deployed: WranglerResult) -> None:
    assert anon.worker("/kv/get", key=ODD_KEY) == "v1"
    assert json.loads(anon.worker("/kv/meta", key="k2")) == {
        "value": "v2",
        "metadata": {"a": 1},
        "cacheStatus": None,
    }
    assert anon.worker("/kv/get", key="never-written") == "<missing>"


def test_wrangler_reads_what_the_worker_wrote(
    anon: Anon, namespace_id: str, deployed: WranglerResult
) -> None:
    assert anon.worker("/kv/put", key="from/the worker?", value="written by the Worker") == "stored"
    got = anon.kv_key("get", namespace_id, "from/the worker?")
    assert got.exit_code == 0, str(got)
    assert got.stdout == "written by the Worker"
    listed = anon.kv_key("list", namespace_id, "--prefix", "from/")
    assert [k["name"] for k in json.loads(listed.stdout)] == ["from/the worker?"]


def test_kv_key_delete(anon: Anon, namespace_id: str, deployed: WranglerResult) -> None:
    assert anon.worker("/kv/put", key="doomed", value="soon gone") == "stored"
    deleted = anon.kv_key("delete", namespace_id, "doomed")
    assert deleted.exit_code == 0, str(deleted)
    assert f'Deleting the key "doomed" on namespace id: "{namespace_id}".' in deleted.stdout
    assert anon.worker("/kv/get", key="doomed") == "<missing>"
    missing = anon.kv_key("get", namespace_id, "doomed")
    assert missing.exit_code == 1, str(missing)
    assert "/values/doomed - 404: Not Found" in missing.stderr, str(missing)


def test_kv_key_put_by_binding(anon: Anon, namespace_id: str, deployed: WranglerResult) -> None:
    put = anon.wrangler("kv", "key", "put", "--binding", "CACHE", "bound", "by binding", "--remote")
    assert put.exit_code == 0, str(put)
    assert f'on namespace binding: "CACHE" (id: "{namespace_id}")' in put.stdout, str(put)
    assert anon.worker("/kv/get", key="bound") == "by binding"


def test_deploy_provisions_a_namespace_and_a_redeploy_inherits_it(
    mayfly_server: MayflyServer, new_user: Any, new_project: Any
) -> None:
    user = new_user("kv-auto")
    project = kv_worker(new_project, "auto-kv-worker", None)

    def wrangler(*args: str) -> WranglerResult:
        return run_wrangler([*args, "--temporary"], project, mayfly_server.env(), user)

    def worker(path: str, **params: str) -> str:
        name = temporary_account_name(user)
        return request_worker(mayfly_server, name, "auto-kv-worker", path, **params).text

    first = wrangler("deploy")
    assert first.exit_code == 0, str(first)
    assert "Provisioning CACHE (KV Namespace)..." in first.stdout, str(first)
    assert 'Creating new KV Namespace "auto-kv-worker-cache"...' in first.stdout
    assert "Resources provisioned, continuing with deployment..." in first.stdout
    assert worker("/kv/put", key="kept", value="across deploys") == "stored"

    second = wrangler("deploy")
    assert second.exit_code == 0, str(second)
    assert "env.CACHE (inherited)" in second.stdout, str(second)
    assert "Provisioning" not in second.stdout
    assert worker("/kv/get", key="kept") == "across deploys"

    listed = wrangler("kv", "namespace", "list")
    [namespace] = json.loads(listed.stdout)
    assert namespace["title"] == "auto-kv-worker-cache"
    got = wrangler("kv", "key", "get", "--namespace-id", namespace["id"], "kept", "--remote")
    assert got.stdout == "across deploys", str(got)


@pytest.fixture(scope="module")
def acme(mayfly_server: MayflyServer) -> dict[str, str]:
    return mayfly_server.create_account("acme-kv")


@pytest.mark.parametrize("with_account_id", [True, False], ids=["token+account-id", "token-only"])
def test_a_permanent_token_with_and_without_the_account_id(
    mayfly_server: MayflyServer,
    acme: dict[str, str],
    new_user: Any,
    new_project: Any,
    with_account_id: bool,
) -> None:
    env = {**mayfly_server.env(), "CLOUDFLARE_API_TOKEN": acme["api_token"]}
    if with_account_id:
        env["CLOUDFLARE_ACCOUNT_ID"] = acme["account_id"]
    suffix = "with-id" if with_account_id else "without-id"
    user = new_user(f"kv-{suffix}")
    scratch = new_project("hello")

    created = run_wrangler(["kv", "namespace", "create", f"STORE_{suffix}"], scratch, env, user)
    assert created.exit_code == 0, str(created)
    found = NAMESPACE_ID.search(created.stdout)
    assert found, str(created)
    namespace_id = found.group(1)
    project = kv_worker(new_project, f"kv-{suffix}", namespace_id)
    put = run_wrangler(
        ["kv", "key", "put", "--binding", "CACHE", ODD_KEY, f"value {suffix}", "--remote"],
        project,
        env,
        user,
    )
    assert put.exit_code == 0, str(put)

    deploy = run_wrangler(["deploy"], project, env, user)
    assert deploy.exit_code == 0, str(deploy)
    assert f"env.CACHE ({namespace_id})" in deploy.stdout, str(deploy)
    response = request_worker(mayfly_server, "acme-kv", f"kv-{suffix}", "/kv/get", key=ODD_KEY)
    assert (response.status_code, response.text) == (200, f"value {suffix}")
    assert request_worker(
        mayfly_server, "acme-kv", f"kv-{suffix}", "/kv/put", key="back", value=suffix
    ).is_success
    got = run_wrangler(
        ["kv", "key", "get", "--binding", "CACHE", "back", "--remote"], project, env, user
    )
    assert got.stdout == suffix, str(got)
