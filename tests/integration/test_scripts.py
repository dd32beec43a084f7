"""Uploads, versions and deployments through the v4 API (DESIGN §3, spec W1-W13)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from mayfly.app import Platform
from tests.conftest import HELLO, auth, provision, upload_body


@pytest.fixture
def account(client: TestClient) -> dict[str, Any]:
    result: dict[str, Any] = provision(client)["account"]
    return result


def base(account: dict[str, Any], script: str = "hello") -> str:
    return f"accounts/{account['id']}/workers/scripts/{script}"


def deployed_version(
    platform: Platform, account: dict[str, Any], script: str = "hello"
) -> str | None:
    route = platform.services.routing.route(f"{script}.{account['name']}.localhost")
    return route.version_id


@pytest.mark.parametrize(
    "path",
    [
        "workers/services/hello",
        "workers/scripts/hello/secrets",
        "workers/scripts/hello/deployments",
        "workers/scripts/hello/versions",
        "workers/scripts/hello/settings",
        "workers/workers/hello",
    ],
)
def test_a_new_worker_is_10007(client: TestClient, account: dict[str, Any], path: str) -> None:
    response = client.get(f"accounts/{account['id']}/{path}", headers=auth(account["apiToken"]))
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == 10007


def test_put_stores_and_deploys(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    token = auth(account["apiToken"])
    response = client.put(
        base(account) + "?excludeScript=true&bindings_inherit=strict",
        headers=token,
        **upload_body(bindings=[{"name": "GREETING", "type": "plain_text", "text": "world"}]),
    )
    assert response.status_code == 200, response.text
    version_id = response.json()["result"]["deployment_id"]
    assert deployed_version(platform, account) == version_id
    service = client.get(f"accounts/{account['id']}/workers/services/hello", headers=token).json()
    assert service["result"]["default_environment"]["script"]["tag"]
    worker = client.get(f"accounts/{account['id']}/workers/workers/hello", headers=token).json()
    assert worker["result"]["subdomain"]["url"] == f"http://hello.{account['name']}.localhost:8788"
    deployments = client.get(base(account) + "/deployments", headers=token).json()["result"]
    assert deployments["deployments"][0]["versions"] == [
        {"version_id": version_id, "percentage": 100}
    ]
    code = platform.services.routing.version_code(version_id)
    assert code["env"] == {"GREETING": "world"}
    assert code["modules"][0]["text"] == HELLO.decode()


def test_versions_do_not_deploy_and_deployments_do(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    token = auth(account["apiToken"])
    first = client.put(base(account), headers=token, **upload_body()).json()["result"][
        "deployment_id"
    ]
    second = client.post(base(account) + "/versions", headers=token, **upload_body())
    assert second.status_code == 200, second.text
    second_id = second.json()["result"]["id"]
    assert second.json()["result"]["resources"]["script"] is not None
    assert deployed_version(platform, account) == first
    deploy = client.post(
        base(account) + "/deployments",
        headers=token,
        content=json.dumps(
            {
                "strategy": "percentage",
                "versions": [{"version_id": second_id, "percentage": 100}],
                "annotations": {"workers/message": "ship it"},
            }
        ),
    )
    assert deploy.status_code == 200, deploy.text
    assert deployed_version(platform, account) == second_id
    # A rollback is a new deployment of the older version.
    rollback = client.post(
        base(account) + "/deployments",
        headers=token,
        json={"strategy": "percentage", "versions": [{"version_id": first, "percentage": 100}]},
    )
    assert rollback.status_code == 200
    assert deployed_version(platform, account) == first
    deployments = client.get(base(account) + "/deployments", headers=token).json()["result"][
        "deployments"
    ]
    assert [d["versions"][0]["version_id"] for d in deployments] == [first, second_id, first]
    created = [d["created_on"] for d in deployments]
    assert created == sorted(created, reverse=True)
    versions = client.get(base(account) + "/versions?deployable=true", headers=token).json()[
        "result"
    ]
    assert {v["id"] for v in versions["items"]} == {first, second_id}
    one = client.get(base(account) + f"/versions/{second_id}", headers=token).json()["result"]
    assert one["id"] == second_id
    assert one["resources"]["script"]["handlers"] == ["fetch"]
    assert one["resources"]["script_runtime"]["compatibility_date"] == "2025-01-01"


def test_gradual_and_foreign_deployments_are_refused(
    client: TestClient, account: dict[str, Any]
) -> None:
    token = auth(account["apiToken"])
    first = client.put(base(account), headers=token, **upload_body()).json()["result"][
        "deployment_id"
    ]
    split = client.post(
        base(account) + "/deployments",
        headers=token,
        json={
            "versions": [
                {"version_id": first, "percentage": 50},
                {"version_id": first, "percentage": 50},
            ]
        },
    )
    assert split.json()["errors"][0]["code"] == 10021
    unknown = client.post(
        base(account) + "/deployments",
        headers=token,
        json={
            "versions": [{"version_id": "00000000-0000-0000-0000-000000000000", "percentage": 100}]
        },
    )
    assert unknown.json()["errors"][0]["code"] == 10021


MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    (
        "no metadata",
        {"files": [("index.js", ("index.js", HELLO, "application/javascript+module"))]},
        "metadata",
    ),
    (
        "metadata not json",
        {
            "files": [
                ("metadata", (None, "{", "application/json")),
                ("index.js", ("index.js", HELLO, "application/javascript+module")),
            ]
        },
        "JSON",
    ),
    (
        "main module missing",
        upload_body(
            main="missing.js", modules={"index.js": (HELLO, "application/javascript+module")}
        ),
        "missing.js",
    ),
    (
        "escaping name",
        upload_body(
            main="../evil.js", modules={"../evil.js": (HELLO, "application/javascript+module")}
        ),
        "..",
    ),
    (
        "absolute name",
        upload_body(
            main="/evil.js", modules={"/evil.js": (HELLO, "application/javascript+module")}
        ),
        "relative",
    ),
    ("bad date", upload_body(compatibility_date="soon"), "compatibility_date"),
    (
        "bad flag",
        upload_body(compatibility_flags=["unsafe_eval_everything"]),
        "unsafe_eval_everything",
    ),
    ("bad binding", upload_body(bindings=[{"name": "DB", "type": "d1", "id": "x"}]), "d1"),
    (
        "unknown kv",
        upload_body(bindings=[{"name": "KV", "type": "kv_namespace", "namespace_id": "nope"}]),
        "nope",
    ),
    ("strict inherit", upload_body(bindings=[{"name": "GONE", "type": "inherit"}]), "GONE"),
    (
        "not multipart",
        {"content": b"export default {}", "headers": {"content-type": "application/javascript"}},
        "multipart",
    ),
    (
        "python",
        upload_body(
            modules={
                "index.js": (HELLO, "application/javascript+module"),
                "x.py": (b"", "text/x-python"),
            }
        ),
        "Python",
    ),
]


@pytest.mark.parametrize(("label", "body", "needle"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_uploads_are_10021_and_keep_the_previous_version(
    client: TestClient,
    account: dict[str, Any],
    platform: Platform,
    label: str,
    body: dict[str, Any],
    needle: str,
) -> None:
    token = auth(account["apiToken"])
    good = client.put(base(account), headers=token, **upload_body()).json()["result"][
        "deployment_id"
    ]
    headers = {**token, **body.pop("headers", {})}
    response = client.put(base(account) + "?bindings_inherit=strict", headers=headers, **body)
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert error["code"] == 10021
    assert needle in error["message"]
    assert deployed_version(platform, account) == good
    versions = client.get(base(account) + "/versions", headers=token).json()["result"]["items"]
    assert len(versions) == 1


def test_upload_size_limit(tmp_path: Any, clock: Any) -> None:
    from tests.conftest import make_settings

    platform = Platform.create(make_settings(tmp_path, max_upload_bytes=1000), clock=clock)
    with TestClient(platform.public_app(), base_url="http://t/client/v4/") as client:
        account = provision(client)["account"]
        big = upload_body(
            modules={"index.js": (HELLO + b"//" + b"x" * 2000, "application/javascript+module")}
        )
        response = client.put(base(account), headers=auth(account["apiToken"]), **big)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 10021
    assert "limit" in response.json()["errors"][0]["message"]


def test_new_compatibility_date_is_clamped_with_a_message(
    client: TestClient, account: dict[str, Any]
) -> None:
    response = client.put(
        base(account),
        headers=auth(account["apiToken"]),
        **upload_body(compatibility_date="2099-01-01"),
    )
    body = response.json()
    assert body["result"]["compatibility_date"] == "2026-11-24"
    assert "newer" in body["messages"][0]["message"]


def test_draft_worker_without_date_and_sdk_style_parts(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    """wrangler's draft Worker (secret put on a missing Worker) and the SDK's `files` parts."""
    token = auth(account["apiToken"])
    draft = client.put(
        base(account, "draft"),
        headers=token,
        files=[
            (
                "metadata",
                (
                    None,
                    json.dumps({"main_module": "draft", "bindings": [], "logpush": False}),
                    None,
                ),
            ),
            ("draft", ("draft", b"export default { fetch() {} }", "application/javascript+module")),
        ],
    )
    assert draft.status_code == 200, draft.text
    assert draft.json()["result"]["compatibility_date"] == "2025-01-01"
    sdk = client.put(
        base(account, "sdk"),
        headers=token,
        files=[
            ("metadata", (None, json.dumps({"main_module": "main.js"}), "application/json")),
            (
                "files",
                (
                    "main.js",
                    b"import x from './lib/x.js'; export default { fetch() { return new Response(x) } }",
                    "application/javascript+module",
                ),
            ),
            ("files", ("lib/x.js", b"export default 'x'", "application/javascript+module")),
            ("files", ("main.js.map", b"{}", "application/source-map")),
        ],
    )
    assert sdk.status_code == 200, sdk.text
    code = platform.services.routing.version_code(sdk.json()["result"]["deployment_id"])
    assert [m["name"] for m in code["modules"]] == [
        "lib/x.js",
        "main.js",
    ]  # the source map is stored, not executed


def test_keep_bindings_and_inherit(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    token = auth(account["apiToken"])
    client.put(
        base(account),
        headers=token,
        **upload_body(
            bindings=[
                {"name": "SECRET", "type": "secret_text", "text": "s3cr3t"},
                {"name": "VAR", "type": "plain_text", "text": "one"},
            ]
        ),
    )
    settings = client.get(base(account) + "/settings", headers=token).json()["result"]
    assert {"name": "SECRET", "type": "secret_text"} in settings["bindings"]
    assert "s3cr3t" not in json.dumps(settings)
    secrets = client.get(base(account) + "/secrets", headers=token).json()["result"]
    assert secrets == [{"name": "SECRET", "type": "secret_text"}]
    second = client.post(
        base(account) + "/versions?bindings_inherit=strict",
        headers=token,
        **upload_body(bindings=[{"name": "VAR", "type": "inherit"}], keep_bindings=["secret_text"]),
    ).json()["result"]
    code = platform.services.routing.version_code(second["id"])
    assert code["env"] == {"VAR": "one", "SECRET": "s3cr3t"}


def test_delete_removes_the_worker(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    token = auth(account["apiToken"])
    client.put(base(account), headers=token, **upload_body())
    assert client.get(base(account) + "/references", headers=token).status_code == 200
    deleted = client.delete(
        f"accounts/{account['id']}/workers/services/hello?force=false", headers=token
    )
    assert deleted.status_code == 200
    assert platform.services.routing.route(f"hello.{account['name']}.localhost").status == "unknown"
    again = client.get(base(account) + "/references", headers=token)
    assert again.json()["errors"][0]["code"] == 10007
    assert client.delete(base(account), headers=token).json()["errors"][0]["code"] == 10007


def test_subdomain_toggle_and_script_settings(
    client: TestClient, account: dict[str, Any], platform: Platform
) -> None:
    token = auth(account["apiToken"])
    client.put(base(account), headers=token, **upload_body())
    on = client.post(
        base(account) + "/subdomain", headers=token, content='{"enabled":true}'
    ).json()["result"]
    assert on == {"enabled": True, "previews_enabled": False}
    patched = client.patch(
        base(account) + "/script-settings",
        headers=token,
        json={"observability": {"enabled": False}, "tags": []},
    )
    assert patched.status_code == 200
    client.post(base(account) + "/subdomain", headers=token, json={"enabled": False})
    assert (
        platform.services.routing.route(f"hello.{account['name']}.localhost").status == "disabled"
    )


def test_worker_names_are_validated(client: TestClient, account: dict[str, Any]) -> None:
    response = client.put(
        base(account, "Bad_Name!"), headers=auth(account["apiToken"]), **upload_body()
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 10021
