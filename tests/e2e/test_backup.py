"""`mayfly admin backup DIR` while the server serves and deploys, `restore DIR` into a fresh data
dir: the restored server serves the same Workers, secrets (the key came along) and KV."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests.conftest import auth, provision, upload_body
from tests.e2e.conftest import MAYFLY, clean_environment
from tests.e2e.test_logs import SECRET_WORKER, json_logging_server

pytestmark = pytest.mark.e2e


def admin(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MAYFLY), "admin", *args, "--json", "--data-dir", str(data_dir)],
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def deploy(api: httpx.Client, account: dict[str, str], name: str, source: bytes) -> None:
    response = api.put(
        f"accounts/{account['id']}/workers/scripts/{name}",
        headers=auth(account["apiToken"]),
        **upload_body(modules={"index.js": (source, "application/javascript+module")}),
    )
    assert response.status_code == 200, response.text


def test_backup_while_serving_then_restore(tmp_path: Path) -> None:
    with (
        json_logging_server(tmp_path / "first") as server,
        httpx.Client(base_url=server.api_url + "/client/v4/", timeout=60) as api,
    ):
        account = provision(api)["account"]  # type: ignore[arg-type]
        token = auth(account["apiToken"])
        base = f"accounts/{account['id']}"
        ns = api.post(f"{base}/storage/kv/namespaces", headers=token, json={"title": "s"})
        ns_id = ns.json()["result"]["id"]
        api.put(f"{base}/storage/kv/namespaces/{ns_id}/values/k", headers=token, content="v1")
        binding = {"name": "STORE", "type": "kv_namespace", "namespace_id": ns_id}
        stored = api.put(
            f"{base}/workers/scripts/hello",
            headers=token,
            **upload_body(
                modules={"index.js": (SECRET_WORKER, "application/javascript+module")},
                bindings=[binding],
            ),
        )
        assert stored.status_code == 200, stored.text
        secret = {"name": "API_KEY", "text": "twelve chars", "type": "secret_text"}
        put = api.put(f"{base}/workers/scripts/hello/secrets", headers=token, json=secret)
        assert put.status_code == 200, put.text
        host = f"http://hello.{account['name']}.localhost"
        expected = "secret 12 kv 2"
        assert server.get_worker(host).text == expected

        # Deploys go on while the backup runs: it must still be consistent.
        stop = threading.Event()
        errors: list[str] = []

        def keep_deploying() -> None:
            with httpx.Client(base_url=server.api_url + "/client/v4/", timeout=60) as other:
                n = 0
                while not stop.is_set():
                    n += 1
                    source = b"export default { fetch() { return new Response('%d'); } };" % n
                    try:
                        deploy(other, account, f"busy{n % 3}", source)
                    except AssertionError as exc:
                        errors.append(str(exc))

        deployer = threading.Thread(target=keep_deploying)
        deployer.start()
        try:
            done = admin("backup", str(tmp_path / "backup"), data_dir=server.data_dir)
        finally:
            stop.set()
            deployer.join(timeout=60)
        assert done.returncode == 0, done.stderr
        assert not errors, errors
        summary = json.loads(done.stdout)["backup"]
        assert summary["blobs"] >= 2 and summary["missing_blobs"] == 0

    fresh = tmp_path / "restored" / "data"
    restored = admin("restore", str(tmp_path / "backup"), data_dir=fresh)
    assert restored.returncode == 0, restored.stderr
    again = admin("restore", str(tmp_path / "backup"), data_dir=fresh)
    assert again.returncode != 0 and "already exists" in again.stderr

    with json_logging_server(tmp_path / "restored") as second:
        assert second.data_dir == fresh
        assert second.get_worker(host).text == expected
        for n in range(3):  # every busy Worker the snapshot had serves
            answer = second.get_worker(f"http://busy{n}.{account['name']}.localhost")
            assert answer.status_code in (200, 404)
            if answer.status_code == 200:
                assert answer.text.isdigit()
