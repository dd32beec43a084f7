"""The real wrangler against features Mayfly does not serve (mayfly/surface.py): every deploy that
needs one fails (non-zero exit) on a 10021 that names it, before anything goes live, so the
version deployed before keeps serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mayfly import surface
from tests.compat.conftest import MayflyServer, WranglerUser, run_wrangler
from tests.compat.data_plane import plain_worker, request_worker, temporary_account_name

pytestmark = [
    pytest.mark.compat,
    # a data plane: the version deployed before is asked whether it still serves
    pytest.mark.parametrize("mayfly_server", [True], indirect=True),
]

# wrangler.toml tables that need a feature Mayfly does not serve (appended to the config).
REFUSED = {
    "durable_objects": '[[durable_objects.bindings]]\nname = "COUNTER"\nclass_name = "Counter"\n',
    "queues": '[[queues.producers]]\nbinding = "JOBS"\nqueue = "jobs"\n',
    "ai": '[ai]\nbinding = "AI"\n',
    "vectorize": '[[vectorize]]\nbinding = "VEC"\nindex_name = "idx"\n',
    "hyperdrive": '[[hyperdrive]]\nbinding = "HD"\nid = "0123456789abcdef0123456789abcdef"\n',
}


@pytest.fixture(scope="module")
def user(new_user: Any) -> WranglerUser:
    made: WranglerUser = new_user("refusals")
    return made


@pytest.mark.parametrize("key", sorted(REFUSED))
def test_wrangler_deploy_of_a_refused_feature_changes_nothing(
    mayfly_server: MayflyServer, user: WranglerUser, new_project: Any, key: str
) -> None:
    script = f"refused-{key.replace('_', '-')}"
    project: Path = plain_worker(new_project, script)
    env = mayfly_server.env()
    first = run_wrangler(["deploy", "--temporary"], project, env, user)
    assert first.exit_code == 0, str(first)
    account = temporary_account_name(user)
    before = request_worker(mayfly_server, account, script, "/")
    assert before.status_code == 200, before.text

    config = project / "wrangler.toml"
    config.write_text(config.read_text() + "\n" + REFUSED[key])
    if key == "durable_objects":  # wrangler itself checks that the class is exported
        main = project / "index.js"
        main.write_text(main.read_text() + "\nexport class Counter {}\n")
    refused = run_wrangler(["deploy", "--temporary"], project, env, user)
    assert refused.exit_code != 0, str(refused)
    assert "10021" in refused.output, str(refused)
    assert surface.REFUSED_CONFIG_KEYS[key].feature in refused.output, str(refused)
    after = request_worker(mayfly_server, account, script, "/")
    assert (after.status_code, after.text) == (200, before.text)
    versions = run_wrangler(["versions", "list", "--json", "--temporary"], project, env, user)
    assert versions.exit_code == 0, str(versions)
    assert versions.stdout.count('"id"') == 1, "no second version was stored"


def test_wrangler_deploy_with_routes_ends_on_one_clear_error(
    mayfly_server: MayflyServer, user: WranglerUser, new_project: Any
) -> None:
    """wrangler uploads before it sets routes: the refusal of the routes leaves that deploy, and
    its error says so (the Worker is deployed, at its URL; only the routes were not set)."""
    project: Path = plain_worker(new_project, "refused-routes")
    env = mayfly_server.env()
    first = run_wrangler(["deploy", "--temporary"], project, env, user)
    assert first.exit_code == 0, str(first)
    account = temporary_account_name(user)
    before = request_worker(mayfly_server, account, "refused-routes", "/")
    assert before.status_code == 200, before.text

    config = project / "wrangler.toml"
    # With routes and no `workers_dev = true` wrangler also turns the workers.dev URL off (a
    # setting of its own, before the routes): kept on here to see the new version serve.
    config.write_text('routes = ["example.com/*"]\nworkers_dev = true\n' + config.read_text())
    main = project / "index.js"
    main.write_text(main.read_text().replace("export default {", "export default {\n  // v2"))
    refused = run_wrangler(["deploy", "--temporary"], project, env, user)
    assert refused.exit_code != 0, str(refused)
    output = refused.output.replace("\n", " ")
    assert "10021" in output, str(refused)
    assert surface.BASE_URL_NOTE in output, str(refused)
    assert "The Worker itself is deployed" in output, str(refused)
    after = request_worker(mayfly_server, account, "refused-routes", "/")
    assert after.status_code == 200, after.text
    deployments = run_wrangler(["deployments", "list", "--json", "--temporary"], project, env, user)
    assert deployments.exit_code == 0, str(deployments)
    assert deployments.stdout.count('"id"') >= 2, "the second deploy stays"


def test_wrangler_deploy_of_a_new_worker_with_routes_is_refused_and_not_served(
    mayfly_server: MayflyServer, user: WranglerUser, new_project: Any
) -> None:
    """Routes and no `workers_dev = true`: wrangler turns the workers.dev URL off, then asks for
    the zone (10021): the deploy fails and the Worker does not serve."""
    project: Path = plain_worker(new_project, "new-with-routes")
    config = project / "wrangler.toml"
    config.write_text('routes = ["example.com/*"]\n' + config.read_text())
    refused = run_wrangler(["deploy", "--temporary"], project, mayfly_server.env(), user)
    assert refused.exit_code != 0, str(refused)
    assert "10021" in refused.output, str(refused)
    account = temporary_account_name(user)
    assert request_worker(mayfly_server, account, "new-with-routes", "/").status_code == 404


SERVICE_WORKER = """
addEventListener("fetch", (event) => {
  event.respondWith(new Response("service worker says " + GREETING));
});
"""


def test_wrangler_deploys_a_service_worker_script(
    mayfly_server: MayflyServer, user: WranglerUser, new_project: Any
) -> None:
    project: Path = plain_worker(new_project, "service-worker")
    (project / "index.js").write_text(SERVICE_WORKER)
    config = project / "wrangler.toml"
    config.write_text(config.read_text() + '\n[vars]\nGREETING = "hi"\n')
    deployed = run_wrangler(["deploy", "--temporary"], project, mayfly_server.env(), user)
    assert deployed.exit_code == 0, str(deployed)
    account = temporary_account_name(user)
    response = request_worker(mayfly_server, account, "service-worker", "/")
    assert (response.status_code, response.text) == (200, "service worker says hi")
