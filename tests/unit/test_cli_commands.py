"""`mayfly kv|secret|versions|deployments|rollback|delete|tail` through click's runner, the SDK
talking to the app in-process (the tail's WebSocket too, through Starlette's test client)."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from mayfly.api.internal import SECRET_HEADER
from mayfly.app import Platform
from mayfly.sdk import TailConnection
from tests.unit.cli_support import Mayfly, app_transport


def write_project(root: Path, name: str = "app", body: str = "hello", extra: str = "") -> Path:
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "wrangler.toml").write_text(
        f'name = "{name}"\nmain = "src/index.js"\ncompatibility_date = "2025-01-01"\n{extra}'
    )
    (root / "src" / "index.js").write_text(
        f"export default {{ fetch() {{ return new Response({body!r}); }} }};\n"
    )
    return root


@pytest.fixture
def transport(platform: Platform) -> Iterator[httpx.MockTransport]:
    with app_transport(platform.public_app()) as t:
        yield t


class InProcessSocket:
    """A TailConnection over Starlette's in-process WebSocket session (recv gets a timeout by
    reading on a thread)."""

    def __init__(self, client: TestClient, url: str) -> None:
        self._context = client.websocket_connect(urlsplit(url).path, subprotocols=["trace-v1"])
        self.session = self._context.__enter__()
        self.subprotocol = self.session.accepted_subprotocol
        self.sent: list[str] = []
        self._inbox: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                self._inbox.put(self.session.receive_text())
        except (WebSocketDisconnect, RuntimeError, Exception):
            self._inbox.put(None)

    def send(self, message: str) -> None:
        self.sent.append(message)
        self.session.send_text(message)

    def recv(self, timeout: float | None = None) -> str:
        try:
            message = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if message is None:
            raise TimeoutError
        return message

    def close(self) -> None:
        self._context.__exit__(None, None, None)


class Runner(Mayfly):
    """`Mayfly` whose tail connects through the in-process app; hooks run just before."""

    def __init__(self, transport: httpx.BaseTransport, home: Path, ws_client: TestClient) -> None:
        super().__init__(transport, home, self.connect)
        self.ws_client = ws_client
        self.on_connect: list[Callable[[], None]] = []
        self.sockets: list[InProcessSocket] = []

    def connect(self, url: str) -> TailConnection:
        for hook in self.on_connect:
            hook()
        socket = InProcessSocket(self.ws_client, url)
        self.sockets.append(socket)
        return socket


@pytest.fixture
def mayfly(
    transport: httpx.MockTransport,
    tmp_path: Path,
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Runner]:
    monkeypatch.chdir(write_project(tmp_path / "project"))
    with TestClient(platform.public_app(), base_url="http://localhost:8787") as ws_client:
        yield Runner(transport, tmp_path / "home", ws_client)


def internal_version(platform: Platform, version_id: str) -> dict[str, Any]:
    with TestClient(platform.internal_app()) as internal:
        payload: dict[str, Any] = internal.get(
            f"/internal/v1/versions/{version_id}",
            headers={SECRET_HEADER: platform.internal_secret},
        ).json()
        return payload


# -- kv -----------------------------------------------------------------------------------


def test_kv_namespaces(mayfly: Mayfly) -> None:
    created = mayfly.ok("kv", "namespace", "create", "CACHE", "--temporary")
    assert set(created) == {"id", "title"} and created["title"] == "CACHE"
    text = mayfly("kv", "namespace", "create", "OTHER")
    assert text.exit_code == 0, text.output
    assert 'binding = "OTHER"' in text.stdout

    listed = mayfly.ok("kv", "namespace", "list")
    assert [n["title"] for n in listed] == ["CACHE", "OTHER"]
    assert listed[0]["id"] == created["id"]

    code, body = mayfly.json("kv", "namespace", "create", "CACHE")
    assert code == 1 and body["error"]["code"] == 10014

    deleted = mayfly.ok("kv", "namespace", "delete", "--namespace-id", created["id"])
    assert deleted == {"id": created["id"], "deleted": True}
    assert [n["title"] for n in mayfly.ok("kv", "namespace", "list")] == ["OTHER"]


def test_kv_keys(mayfly: Mayfly, tmp_path: Path) -> None:
    ns = mayfly.ok("kv", "namespace", "create", "DATA", "--temporary")["id"]
    put = mayfly.ok("kv", "key", "put", "greeting", "hi there", "--namespace-id", ns)
    assert put == {"key": "greeting", "namespace_id": ns, "size": 8}

    # Exactly the bytes, no newline added.
    got = mayfly("kv", "key", "get", "greeting", "--namespace-id", ns)
    assert got.exit_code == 0 and got.stdout_bytes == b"hi there"

    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\xff\x10")
    mayfly.ok("kv", "key", "put", "dir/a b?c#d", "--path", str(binary), "--namespace-id", ns)
    assert (
        mayfly("kv", "key", "get", "dir/a b?c#d", "--namespace-id", ns).stdout_bytes
        == b"\x00\xff\x10"
    )
    as_json = mayfly.ok("kv", "key", "get", "dir/a b?c#d", "--namespace-id", ns)
    assert as_json == {"key": "dir/a b?c#d", "value": None, "value_base64": "AP8Q"}

    mayfly.ok(
        "kv",
        "key",
        "put",
        "meta",
        "v",
        "--metadata",
        '{"a": 1}',
        "--ttl",
        "3600",
        "--namespace-id",
        ns,
    )
    mayfly("kv", "key", "put", "stdin", "--path", "-", "--namespace-id", ns, input=b"piped")
    assert mayfly.ok("kv", "key", "get", "stdin", "--namespace-id", ns)["value"] == "piped"

    keys = mayfly.ok("kv", "key", "list", "--namespace-id", ns)
    assert [k["name"] for k in keys] == ["dir/a b?c#d", "greeting", "meta", "stdin"]
    meta = next(k for k in keys if k["name"] == "meta")
    assert meta["metadata"] == {"a": 1} and meta["expiration"] > 0
    assert [
        k["name"] for k in mayfly.ok("kv", "key", "list", "--prefix", "g", "--namespace-id", ns)
    ] == ["greeting"]
    text = mayfly("kv", "key", "list", "--namespace-id", ns)
    assert "meta  (expires " in text.stdout and 'metadata {"a": 1}' in text.stdout

    assert mayfly.ok("kv", "key", "delete", "greeting", "--namespace-id", ns)["deleted"] is True
    code, body = mayfly.json("kv", "key", "get", "greeting", "--namespace-id", ns)
    assert code == 1 and body["error"]["code"] == 10009


def test_kv_usage_errors(mayfly: Mayfly) -> None:
    result = mayfly("kv", "key", "get", "k")
    assert result.exit_code == 2
    assert "exactly one of --namespace-id" in result.stderr
    code, body = mayfly.json("kv", "key", "put", "k", "--namespace-id", "x")
    assert code == 2 and body["error"]["code"] == "usage"
    code, body = mayfly.json(
        "kv", "key", "put", "k", "v", "--metadata", "{nope", "--namespace-id", "x"
    )
    assert code == 2 and "--metadata is not JSON" in body["error"]["message"]
    code, body = mayfly.json("kv", "key", "get", "k", "--binding", "NOPE")
    assert code == 2 and "No KV binding 'NOPE'" in body["error"]["message"]


def test_kv_binding_from_the_configuration(mayfly: Mayfly) -> None:
    project = Path.cwd()
    write_project(project, extra='[[kv_namespaces]]\nbinding = "STORE"\n')
    code, body = mayfly.json("kv", "key", "put", "k", "v", "--binding", "STORE", "--temporary")
    assert code == 1 and body["error"]["code"] == "namespace_not_provisioned"

    deployed = mayfly.ok("deploy", "--temporary")
    [namespace] = deployed["kv_namespaces"]
    assert namespace["binding"] == "STORE" and namespace["state"] == "created"
    assert namespace["title"] == "app-store"

    put = mayfly.ok("kv", "key", "put", "k", "v", "--binding", "STORE")
    assert put["namespace_id"] == namespace["id"]
    assert mayfly.ok("kv", "key", "get", "k", "--namespace-id", namespace["id"])["value"] == "v"

    # An explicit id in the configuration is used as is.
    write_project(
        project, extra=f'[[kv_namespaces]]\nbinding = "STORE"\nid = "{namespace["id"]}"\n'
    )
    assert mayfly.ok("kv", "key", "get", "k", "--binding", "STORE")["value"] == "v"


# -- deploy with KV, .dev.vars, --env -------------------------------------------------------


def test_deploy_provisions_kv_once_and_reuses_it(mayfly: Mayfly, platform: Platform) -> None:
    write_project(Path.cwd(), extra='[[kv_namespaces]]\nbinding = "MY_KV"\n')
    first = mayfly.ok("deploy", "--temporary")
    second = mayfly.ok("deploy")
    assert first["kv_namespaces"][0]["state"] == "created"
    assert second["kv_namespaces"][0]["state"] == "existing"
    assert second["kv_namespaces"][0]["id"] == first["kv_namespaces"][0]["id"]
    titles = [n["title"] for n in mayfly.ok("kv", "namespace", "list")]
    assert titles == ["app-my_kv"]
    payload = internal_version(platform, second["version_id"])
    assert payload["kv_namespaces"] == [
        {"name": "MY_KV", "namespace_id": first["kv_namespaces"][0]["id"]}
    ]
    text = mayfly("deploy")
    assert "KV MY_KV" in text.stdout and "reused" in text.stdout


def test_dev_vars_are_uploaded_only_when_asked(mayfly: Mayfly, platform: Platform) -> None:
    project = write_project(Path.cwd(), extra='[vars]\nMODE = "prod"\n')
    (project / ".dev.vars").write_text('API_KEY="s3cr3t"\nMODE=dev\n')
    result = mayfly("deploy", "--temporary", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert ".dev.vars was not uploaded (2 entries)" in result.stderr
    assert body["dev_vars"]["uploaded"] is False
    assert body["dev_vars"]["names"] == ["API_KEY", "MODE"]
    assert "s3cr3t" not in result.stdout
    assert internal_version(platform, body["version_id"])["env"] == {"MODE": "prod"}

    result = mayfly("deploy", "--dev-vars", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["dev_vars"]["uploaded"] is True
    assert "overrides the var(s) MODE" in result.stderr
    assert internal_version(platform, body["version_id"])["env"] == {
        "API_KEY": "s3cr3t",
        "MODE": "dev",
    }
    secrets = mayfly.ok("secret", "list")
    assert sorted(s["name"] for s in secrets) == ["API_KEY", "MODE"]


def test_deploy_an_environment(mayfly: Mayfly, platform: Platform) -> None:
    write_project(
        Path.cwd(),
        extra=(
            '[vars]\nWHERE = "top"\n'
            '[[kv_namespaces]]\nbinding = "TOP_KV"\n'
            '[env.staging]\n[env.staging.vars]\nWHERE = "staging"\n'
            '[env.named]\nname = "custom"\n'
        ),
    )
    result = mayfly("deploy", "--env", "staging", "--temporary", "--json")
    assert result.exit_code == 0, result.output
    staging = json.loads(result.stdout)
    assert staging["script"] == "app-staging"
    assert staging["kv_namespaces"] == []  # not inherited
    assert "`kv_namespaces` exists at the top level but not in [env.staging]" in result.stderr
    assert internal_version(platform, staging["version_id"])["env"] == {"WHERE": "staging"}
    assert mayfly.ok("deploy", "-e", "named")["script"] == "custom"
    code, body = mayfly.json("deploy", "--env", "nope")
    assert code == 1 and "no environment named 'nope'" in body["error"]["message"]
    # Commands that take --env act on the environment's Worker.
    assert mayfly.ok("versions", "list", "--env", "staging")[0]["id"] == staging["version_id"]


# -- secrets ------------------------------------------------------------------------------


def test_secrets(mayfly: Mayfly, platform: Platform) -> None:
    mayfly.ok("deploy", "--temporary")
    put = mayfly.ok("secret", "put", "TOKEN", input="abc123\n")
    assert put == {"script": "app", "name": "TOKEN", "created_worker": False}
    mayfly.ok("secret", "put", "OTHER", "--value", "x y")
    assert sorted(s["name"] for s in mayfly.ok("secret", "list")) == ["OTHER", "TOKEN"]

    redeployed = mayfly.ok("deploy")  # secrets survive a deploy that does not mention them
    env = internal_version(platform, redeployed["version_id"])["env"]
    assert env == {"TOKEN": "abc123", "OTHER": "x y"}

    text = mayfly("secret", "list")
    assert "abc123" not in text.output and "TOKEN" in text.stdout
    assert mayfly.ok("secret", "delete", "OTHER")["deleted"] is True
    assert [s["name"] for s in mayfly.ok("secret", "list")] == ["TOKEN"]
    code, body = mayfly.json("secret", "delete", "OTHER")
    assert code == 1 and body["error"]["code"] == 10056


def test_secret_put_creates_a_draft_worker(mayfly: Mayfly) -> None:
    result = mayfly(
        "secret", "put", "KEY", "--name", "brand-new", "--temporary", "--json", input="v"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["created_worker"] is True
    assert "creating a draft Worker" in result.stderr
    assert [s["name"] for s in mayfly.ok("secret", "list", "--name", "brand-new")] == ["KEY"]


def test_commands_without_a_worker_name(
    mayfly: Mayfly, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, body = mayfly.json("secret", "list")
    assert code == 2 and "pass --name" in body["error"]["message"]
    code, body = mayfly.json("versions", "list", "--name", "nothing-here", "--temporary")
    assert code == 1 and body["error"]["code"] == 10007


# -- versions, deployments, rollback, delete ------------------------------------------------


def test_versions_deployments_and_rollback(mayfly: Mayfly, platform: Platform) -> None:
    project = Path.cwd()
    first = mayfly.ok("deploy", "--temporary", "--message", "first")
    write_project(project, body="second")
    second = mayfly.ok("deploy", "--message", "second")

    versions = mayfly.ok("versions", "list")
    assert [v["id"] for v in versions] == [second["version_id"], first["version_id"]]
    assert versions[0]["message"] == "second" and versions[0]["source"] == "Upload"

    view = mayfly.ok("versions", "view", first["version_id"])
    assert view["handlers"] == ["fetch"]
    assert view["compatibility_date"] == "2025-01-01"
    text = mayfly("versions", "view", first["version_id"])
    assert "Compatibility Date:" in text.stdout and first["version_id"] in text.stdout

    status = mayfly.ok("deployments", "status")
    assert status["versions"] == [{"version_id": second["version_id"], "percentage": 100}]
    assert status["version"]["id"] == second["version_id"]
    deployments = mayfly.ok("deployments", "list")
    assert [d["versions"][0]["version_id"] for d in deployments] == [
        second["version_id"],
        first["version_id"],
    ]

    rolled = mayfly.ok("rollback", "--message", "oops")
    assert rolled["version_id"] == first["version_id"]
    assert rolled["previous_version_id"] == second["version_id"]
    status = mayfly.ok("deployments", "status")
    assert status["version"]["id"] == first["version_id"]
    assert status["source"] == "Rollback" and status["message"] == "oops"

    # The default target is now the version before the rollback: `second` again.
    assert mayfly.ok("rollback")["version_id"] == second["version_id"]
    assert mayfly.ok("rollback", first["version_id"])["version_id"] == first["version_id"]
    code, body = mayfly.json("rollback", "00000000-0000-0000-0000-000000000000")
    assert code == 1 and body["error"]["code"] == 10007


def test_rollback_needs_an_earlier_deployment(mayfly: Mayfly) -> None:
    mayfly.ok("deploy", "--temporary")
    code, body = mayfly.json("rollback")
    assert code == 1 and body["error"]["code"] == "no_rollback_target"


def test_delete(mayfly: Mayfly) -> None:
    mayfly.ok("deploy", "--temporary")
    assert mayfly.ok("delete") == {"script": "app", "deleted": True}
    code, body = mayfly.json("versions", "list")
    assert code == 1 and body["error"]["code"] == 10007
    code, body = mayfly.json("delete")
    assert code == 1 and body["error"]["code"] == 10007
    text = mayfly("delete", "--name", "app")
    assert text.exit_code == 1 and "does not exist" in text.stderr


# -- tail -----------------------------------------------------------------------------------


def event(message: str, method: str = "GET", outcome: str = "ok") -> dict[str, Any]:
    return {
        "outcome": outcome,
        "logs": [{"level": "log", "message": [message], "timestamp": 1_795_995_116_896}],
        "exceptions": [] if outcome == "ok" else [{"name": "Error", "message": "boom"}],
        "eventTimestamp": 1_795_995_116_896,
        "event": {
            "request": {"url": "http://app.x.localhost:8788/", "method": method},
            "response": {"status": 200 if outcome == "ok" else 500},
        },
    }


def publish_on_connect(mayfly: Runner, platform: Platform, events: list[dict[str, Any]]) -> None:
    """Events arrive just after the session opens, before the socket reads them."""
    account_id = account_of(mayfly)
    mayfly.on_connect.append(
        lambda: platform.services.tails.hub.publish(account_id, "app", events) and None
    )


def account_of(mayfly: Mayfly) -> str:
    account_id: str = mayfly.ok("whoami")["account_id"]
    return account_id


def test_tail_json_bounded(mayfly: Runner, platform: Platform) -> None:
    mayfly.ok("deploy", "--temporary")
    publish_on_connect(
        mayfly, platform, [event("skipped", method="POST"), event("first"), event("second")]
    )
    result = mayfly("tail", "--json", "--method", "GET", "--max-events", "1", "--timeout", "10")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    item = json.loads(lines[0])
    assert item["logs"][0]["message"] == ["first"]
    assert item["scriptName"] == "app"
    assert "1 event received." in result.stderr
    socket = mayfly.sockets[0]
    assert socket.subprotocol == "trace-v1"
    assert json.loads(socket.sent[0]) == {"debug": False}
    assert platform.services.tails.hub.is_tailed(account_of(mayfly), "app") is False


def test_tail_pretty_with_filters(mayfly: Runner, platform: Platform) -> None:
    mayfly.ok("deploy", "--temporary")
    publish_on_connect(mayfly, platform, [event("fine"), event("broken", outcome="exception")])
    result = mayfly("tail", "--format", "pretty", "--status", "error", "--max-events", "1")
    assert result.exit_code == 0, result.output
    when = datetime.fromtimestamp(1_795_995_116.896, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert result.stdout.splitlines() == [
        f"GET http://app.x.localhost:8788/ - Exception Thrown (500) @ {when}.896Z",
        "  (log) broken",
        "  (error) Error: boom",
    ]


def test_tail_timeout_without_events(mayfly: Mayfly, platform: Platform) -> None:
    mayfly.ok("deploy", "--temporary")
    result = mayfly("tail", "--json", "--timeout", "0.3")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "0 events received." in result.stderr
    assert not platform.services.tails.hub.is_tailed(account_of(mayfly), "app")


def test_tail_ctrl_c_deletes_the_session(mayfly: Runner, platform: Platform) -> None:
    mayfly.ok("deploy", "--temporary")

    def interrupt() -> None:
        raise KeyboardInterrupt

    mayfly.on_connect.append(interrupt)
    result = mayfly("tail", "--json")
    assert result.exit_code == 0, result.output
    assert "Stopping tail" in result.stderr
    assert not platform.services.tails.hub.is_tailed(account_of(mayfly), "app")


def test_tail_of_a_missing_worker(mayfly: Mayfly) -> None:
    code, body = mayfly.json("tail", "--name", "ghost", "--temporary", "--timeout", "1")
    assert code == 1 and body["error"]["code"] == 10007
