"""R2 and service bindings with the real wrangler against `mayfly serve` with its data plane:
`r2 bucket create/list/delete`, `r2 object put/get/delete --remote`, a Worker with an R2 binding and
two service bindings (fetch, and RPC to a named entrypoint) deployed by wrangler and by `mayfly
deploy`, what wrangler writes the Worker reads and the other way round, and a bucket the deploy
provisions when it does not exist."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import MayflyServer, WranglerResult, WranglerUser, run_wrangler
from tests.compat.data_plane import request_worker, temporary_account_name
from tests.serve import MAYFLY, server_environment

pytestmark = [
    pytest.mark.compat,
    pytest.mark.parametrize("mayfly_server", [True], indirect=True),
]

BUCKET = "media"


@dataclass
class Anon:
    """A wrangler user without credentials: every command runs with --temporary."""

    server: MayflyServer
    user: WranglerUser
    backend: Path
    worker: Path

    def wrangler(
        self, *args: str, cwd: Path | None = None, stdin: str | None = None
    ) -> WranglerResult:
        return run_wrangler(
            [*args, "--temporary"], cwd or self.worker, self.server.env(), self.user, stdin=stdin
        )

    def get(self, script: str, path: str, **params: str) -> Any:
        return request_worker(
            self.server, temporary_account_name(self.user), script, path, **params
        )


def project_for(new_project: Any, bucket: str, name: str = "r2-worker") -> Path:
    project: Path = new_project("r2-worker", worker_name=name)
    config = project / "wrangler.toml"
    config.write_text(config.read_text().replace("BUCKET_NAME", bucket))
    return project


@pytest.fixture(scope="module")
def anon(mayfly_server: MayflyServer, new_user: Any, new_project: Any) -> Anon:
    return Anon(
        mayfly_server,
        new_user("r2-anon"),
        new_project("r2-backend"),
        project_for(new_project, BUCKET),
    )


@pytest.fixture(scope="module")
def created(anon: Anon) -> WranglerResult:
    return anon.wrangler("r2", "bucket", "create", BUCKET)


@pytest.fixture(scope="module")
def written(anon: Anon, created: WranglerResult) -> WranglerResult:
    """An object wrangler wrote before the Worker is deployed."""
    put = anon.wrangler(
        "r2", "object", "put", f"{BUCKET}/docs/from wrangler.txt", "--pipe",
        "--content-type", "text/markdown", "--remote", stdin="# written by wrangler",
    )  # fmt: skip
    assert put.exit_code == 0, str(put)
    return put


@pytest.fixture(scope="module")
def deployed(anon: Anon, written: WranglerResult) -> WranglerResult:
    backend = anon.wrangler("deploy", cwd=anon.backend)
    assert backend.exit_code == 0, str(backend)
    result = anon.wrangler("deploy")
    assert result.exit_code == 0, str(result)
    return result


def test_r2_bucket_create_and_list(anon: Anon, created: WranglerResult) -> None:
    assert created.exit_code == 0, str(created)
    assert f"Created bucket '{BUCKET}' with default storage class of Standard." in created.stdout
    again = anon.wrangler("r2", "bucket", "create", BUCKET)
    assert again.exit_code == 1, str(again)
    assert "10004" in again.stderr + again.stdout, str(again)
    listed = anon.wrangler("r2", "bucket", "list")
    assert listed.exit_code == 0, str(listed)
    assert f"name:           {BUCKET}" in listed.stdout or BUCKET in listed.stdout, str(listed)


def test_r2_object_put_and_get(anon: Anon, written: WranglerResult) -> None:
    assert f'Creating object "docs/from wrangler.txt" in bucket "{BUCKET}".' in written.stdout
    got = anon.wrangler(
        "r2", "object", "get", f"{BUCKET}/docs/from wrangler.txt", "--pipe", "--remote"
    )
    assert got.exit_code == 0, str(got)
    assert got.stdout == "# written by wrangler", str(got)


def test_the_worker_reads_what_wrangler_wrote(anon: Anon, deployed: WranglerResult) -> None:
    assert "env.MEDIA (media)" in deployed.stdout and "R2 Bucket" in deployed.stdout, str(deployed)
    response = anon.get("r2-worker", "/r2/get", key="docs/from wrangler.txt")
    assert response.status_code == 200, response.text
    assert response.text == "# written by wrangler"
    assert response.headers["content-type"] == "text/markdown"


def test_wrangler_reads_what_the_worker_wrote(anon: Anon, deployed: WranglerResult) -> None:
    stored = anon.get(
        "r2-worker", "/r2/put", key="from/the worker.txt", value="written by the Worker"
    )
    assert stored.text.startswith("stored 21 "), stored.text
    got = anon.wrangler(
        "r2", "object", "get", f"{BUCKET}/from/the worker.txt", "--pipe", "--remote"
    )
    assert got.exit_code == 0, str(got)
    assert got.stdout == "written by the Worker"
    assert json.loads(anon.get("r2-worker", "/r2/list", prefix="from/").text) == [
        "from/the worker.txt"
    ]


def test_service_bindings_fetch_and_rpc(anon: Anon, deployed: WranglerResult) -> None:
    assert "env.BACKEND (r2-backend)" in deployed.stdout, str(deployed)
    assert "env.GREETER (r2-backend#Greeter)" in deployed.stdout, str(deployed)
    assert anon.get("r2-worker", "/svc/fetch").text == "backend saw POST /from-the-binding"
    assert anon.get("r2-worker", "/svc/rpc", name="ada").text == "hello ada, from the backend"


def test_r2_object_delete_then_bucket_delete(anon: Anon, deployed: WranglerResult) -> None:
    for key in ("docs/from wrangler.txt", "from/the worker.txt"):
        deleted = anon.wrangler("r2", "object", "delete", f"{BUCKET}/{key}", "--remote")
        assert deleted.exit_code == 0, str(deleted)
        assert f'Deleting object "{key}" from bucket "{BUCKET}".' in deleted.stdout
    assert anon.get("r2-worker", "/r2/get", key="from/the worker.txt").text == "<missing>"
    missing = anon.wrangler(
        "r2", "object", "get", f"{BUCKET}/from/the worker.txt", "--pipe", "--remote"
    )
    assert missing.exit_code == 1, str(missing)
    assert "The specified key does not exist." in missing.stderr, str(missing)
    # Redeploying without the binding frees nothing wrangler needs; the empty bucket goes.
    gone = anon.wrangler("r2", "bucket", "delete", "scratch-bucket")
    assert gone.exit_code == 1, str(gone)
    assert anon.wrangler("r2", "bucket", "create", "scratch-bucket").exit_code == 0
    deleted = anon.wrangler("r2", "bucket", "delete", "scratch-bucket")
    assert deleted.exit_code == 0, str(deleted)
    assert "Deleted bucket scratch-bucket." in deleted.stdout


def test_wrangler_deploy_provisions_a_bucket_that_does_not_exist(
    anon: Anon, new_project: Any, deployed: WranglerResult
) -> None:
    project = project_for(new_project, "auto-bucket", "auto-r2-worker")
    result = anon.wrangler("deploy", cwd=project)
    assert result.exit_code == 0, str(result)
    assert "Provisioning MEDIA (R2 Bucket)..." in result.stdout, str(result)
    stored = anon.get("auto-r2-worker", "/r2/put", key="k", value="v")
    assert stored.text.startswith("stored 1 "), stored.text
    got = anon.wrangler("r2", "object", "get", "auto-bucket/k", "--pipe", "--remote")
    assert got.stdout == "v", str(got)


def test_mayfly_deploy_with_r2_and_service_bindings(
    anon: Anon, new_project: Any, deployed: WranglerResult, tmp_path: Path
) -> None:
    """The same project deployed by `mayfly deploy` into wrangler's temporary account: the bucket
    it names is created, and wrangler sees what the Worker writes."""
    project = project_for(new_project, "mayfly-bucket", "mayfly-r2-worker")
    token = anon.user.temporary_account()["account"]["apiToken"]
    env = server_environment()
    env.update(
        {
            "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path / ".config"),
            "MAYFLY_API_URL": anon.server.api_url,
            "MAYFLY_API_TOKEN": token,
        }
    )
    done = subprocess.run(
        [str(MAYFLY), "deploy", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "created the bucket mayfly-bucket" in done.stderr, done.stderr
    stored = anon.get("mayfly-r2-worker", "/r2/put", key="by-mayfly", value="deployed by mayfly")
    assert stored.text.startswith("stored 18 "), stored.text
    got = anon.wrangler("r2", "object", "get", "mayfly-bucket/by-mayfly", "--pipe", "--remote")
    assert got.stdout == "deployed by mayfly", str(got)
    assert anon.get("mayfly-r2-worker", "/svc/rpc", name="bo").text == "hello bo, from the backend"
