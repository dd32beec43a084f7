"""Two API replicas and two data-plane nodes on one PostgreSQL, behind deploy/haproxy.cfg.

What goes through either replica is seen on both nodes on the next request after the API answers:
deploys (NOTIFY + acknowledgements), secrets (the shared platform key), KV, tails and claims.
"""

from __future__ import annotations

import contextlib
import json
import select
import signal
import socket
import subprocess
import time
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.sync.client import connect

from tests.cluster.conftest import Cluster, Node, wait_api, wait_for, wait_plane
from tests.cluster.failover import kill_an_api_replica_and_a_data_plane_node_under_load, source
from tests.conftest import auth, provision, upload_body
from tests.e2e.conftest import MAYFLY, clean_environment
from tests.integration.test_claim_support import Web, claim_path

# One xdist group: the two clusters (4 nodes + HAProxy each) start one after the other.
pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.xdist_group("cluster")]


def replica(cluster: Cluster, index: int) -> httpx.Client:
    return httpx.Client(base_url=cluster.apis[index].url + "/client/v4/", timeout=60)


def deploy(
    api: httpx.Client, account: dict[str, str], name: str, text: str, **meta: object
) -> None:
    answer = api.put(
        f"accounts/{account['id']}/workers/scripts/{name}",
        headers=auth(account["apiToken"]),
        **upload_body(
            modules={"index.js": (source(text), "application/javascript+module")}, **meta
        ),
    )
    assert answer.status_code == 200, answer.text


def on_every_node(cluster: Cluster, host: str) -> list[str]:
    return [cluster.worker(host, via=node.port).text for node in cluster.planes]


def test_deploys_through_either_replica_are_seen_on_every_node_at_once(cluster: Cluster) -> None:
    with replica(cluster, 0) as one, replica(cluster, 1) as two:
        account = provision(one)["account"]
        host = f"hello.{account['name']}.localhost"
        deploy(one, account, "hello", "v1")
        assert [t.split()[0] for t in on_every_node(cluster, host)] == ["v1", "v1"]
        for round_, api in enumerate([two, one, two, one]):
            deploy(api, account, "hello", f"v{round_ + 2}")
            # The next request after the API answered, on each node: no waiting.
            assert [t.split()[0] for t in on_every_node(cluster, host)] == [f"v{round_ + 2}"] * 2
        assert cluster.worker(host).text.startswith("v5")  # through HAProxy


def test_secrets_and_kv_set_through_one_replica_are_served_by_both_nodes(
    cluster: Cluster,
) -> None:
    with replica(cluster, 0) as one, replica(cluster, 1) as two:
        account = provision(two)["account"]
        token = auth(account["apiToken"])
        ns = one.post(
            f"accounts/{account['id']}/storage/kv/namespaces", headers=token, json={"title": "n"}
        ).json()["result"]["id"]
        put = two.put(
            f"accounts/{account['id']}/storage/kv/namespaces/{ns}/values/k",
            headers=token,
            content=b"from-kv",
        )
        assert put.status_code == 200, put.text
        deploy(
            one,
            account,
            "sec",
            "s1",
            bindings=[{"type": "kv_namespace", "name": "KV", "namespace_id": ns}],
        )
        secret = two.put(
            f"accounts/{account['id']}/workers/scripts/sec/secrets",
            headers=token,
            json={"name": "SECRET", "text": "shh", "type": "secret_text"},
        )
        assert secret.status_code == 200, secret.text
        assert on_every_node(cluster, f"sec.{account['name']}.localhost") == ["s1 shh from-kv"] * 2


def test_a_replica_with_another_platform_key_refuses_to_start(cluster: Cluster) -> None:
    rogue: Node = cluster.add_api("rogue", secret_key="not-the-cluster-key")
    rogue.start()
    assert rogue.process is not None
    assert rogue.process.wait(timeout=60) == 2
    assert "is not the one this database was set up with" in rogue.log()


LOGGER = (
    b"export default { async fetch(request) {"
    b" console.log('seen ' + new URL(request.url).pathname); return new Response('ok'); } };"
)


def test_a_tail_opened_on_one_replica_gets_events_whichever_replica_the_nodes_report_to(
    cluster: Cluster,
) -> None:
    with replica(cluster, 0) as one, replica(cluster, 1) as two:
        account = provision(one)["account"]
        token = auth(account["apiToken"])
        deployed = two.put(
            f"accounts/{account['id']}/workers/scripts/logger",
            headers=token,
            **upload_body(modules={"index.js": (LOGGER, "application/javascript+module")}),
        )
        assert deployed.status_code == 200, deployed.text
        host = f"logger.{account['name']}.localhost"
        assert cluster.worker(host).status_code == 200  # cached on a node before the tail
        created = one.post(
            f"accounts/{account['id']}/workers/scripts/logger/tails", headers=token, json={}
        )
        assert created.status_code == 200, created.text
        # The session was opened on replica 1; its WebSocket reaches replica 2 (it moves there).
        url = urlsplit(created.json()["result"]["url"])
        ws_url = url._replace(netloc=f"127.0.0.1:{cluster.apis[1].port}").geturl()
        with connect(ws_url, subprotocols=["trace-v1"]) as ws:
            ws.send(json.dumps({"debug": False}))
            # Each node posts its events to whichever replica HAProxy picks.
            paths = [f"/r{i}" for i in range(8)]
            for i, path in enumerate(paths):
                plane = cluster.planes[i % 2]
                assert cluster.worker(host, via=plane.port, path=path).status_code == 200
            seen: set[str] = set()
            while len(seen) < len(paths):
                event = json.loads(ws.recv(timeout=20))
                for entry in event["logs"]:
                    seen.add(entry["message"][0])
            assert seen == {f"seen {p}" for p in paths}
        deleted = two.delete(
            f"accounts/{account['id']}/workers/scripts/logger/tails/{created.json()['result']['id']}",
            headers=token,
        )
        assert deleted.status_code in (200, 404)


def test_the_reapers_of_both_replicas_delete_each_expired_account_once(cluster: Cluster) -> None:
    before = sum(api.metric("mayfly_reaper_accounts_deleted_total") for api in cluster.apis)
    with httpx.Client(base_url=cluster.api_url + "/client/v4/", timeout=60) as api:
        accounts = [provision(api)["account"] for _ in range(12)]
        for account in accounts[:4]:
            deploy(api, account, "doomed", "bye")
    ids = [a["id"] for a in accounts]
    # Both replicas reap every second; all twelve expire at once.
    cluster.sql(
        "UPDATE accounts SET expires_at = now() - interval '1 second' WHERE id = ANY(:ids)",
        ids=ids,
    )

    def gone() -> bool:
        left = cluster.sql("SELECT count(*) FROM accounts WHERE id = ANY(:ids)", ids=ids)
        return bool(left[0][0] == 0)

    wait_for("the expired accounts reaped", gone, timeout=60, logs=cluster.logs)
    after = sum(api.metric("mayfly_reaper_accounts_deleted_total") for api in cluster.apis)
    assert after - before == len(ids)
    host = f"doomed.{accounts[0]['name']}.localhost"
    assert [cluster.worker(host, via=n.port).status_code for n in cluster.planes] == [410, 410]


SCHEDULED = (
    b"export default {"
    b" async fetch() { return new Response('ok'); },"
    b" async scheduled(event, env) {"
    b"  await env.KV.put('run-' + event.scheduledTime + '-' + crypto.randomUUID(), '1'); } };"
)


def test_a_due_cron_trigger_runs_once_across_both_data_plane_nodes(cluster: Cluster) -> None:
    with httpx.Client(base_url=cluster.api_url + "/client/v4/", timeout=60) as api:
        account = provision(api)["account"]
        token = auth(account["apiToken"])
        base = f"accounts/{account['id']}"
        ns = api.post(f"{base}/storage/kv/namespaces", headers=token, json={"title": "c"})
        ns_id = ns.json()["result"]["id"]
        deployed = api.put(
            f"{base}/workers/scripts/ticker",
            headers=token,
            **upload_body(
                modules={"index.js": (SCHEDULED, "application/javascript+module")},
                bindings=[{"type": "kv_namespace", "name": "KV", "namespace_id": ns_id}],
            ),
        )
        assert deployed.status_code == 200, deployed.text
        put = api.put(
            f"{base}/workers/scripts/ticker/schedules", headers=token, json=[{"cron": "* * * * *"}]
        )
        assert put.status_code == 200, put.text

        def runs() -> list[str]:
            answer = api.get(
                f"{base}/storage/kv/namespaces/{ns_id}/keys?prefix=run-", headers=token
            )
            return [k["name"] for k in answer.json()["result"]]

        # Both nodes' schedulers tick every second; each forced due time must run exactly once.
        forced = []
        for minutes in range(5, 9):
            row = cluster.sql(
                "UPDATE worker_schedules SET next_run_at = date_trunc('minute', now()) "
                "- make_interval(mins => :m) WHERE account_id = :a RETURNING next_run_at",
                m=minutes,
                a=account["id"],
            )
            due_ms = round(row[0][0].timestamp() * 1000)
            forced.append(due_ms)
            wait_for(
                f"the run due at {due_ms}",
                lambda due=due_ms: any(k.startswith(f"run-{due}-") for k in runs()),
                timeout=30,
                logs=cluster.logs,
            )
        keys = runs()
        by_time: dict[str, int] = {}
        for key in keys:
            due = key.split("-")[1]
            by_time[due] = by_time.get(due, 0) + 1
        assert all(by_time[str(due)] == 1 for due in forced), by_time
        assert set(by_time.values()) == {1}, by_time


def test_a_claim_across_replicas_keeps_the_workers_served_on_both_nodes(cluster: Cluster) -> None:
    with replica(cluster, 0) as one, replica(cluster, 1) as two:
        created = provision(one)
        account = created["account"]
        deploy(one, account, "kept", "mine")
        host = f"kept.{account['name']}.localhost"
        assert [t.split()[0] for t in on_every_node(cluster, host)] == ["mine", "mine"]
        path = claim_path(created)
        # Signed up on replica 2; its session cookie is honoured by replica 1 (one platform key).
        with (
            httpx.Client(base_url=cluster.apis[1].url, follow_redirects=False) as b2,
            httpx.Client(base_url=cluster.apis[0].url, follow_redirects=False) as b1,
        ):
            web2 = Web(b2)  # type: ignore[arg-type]
            signed = web2.signup("owner@example.com", next_url=path)
            assert signed.status_code == 303, signed.text
            web1 = Web(b1)  # type: ignore[arg-type]
            b1.cookies = b2.cookies
            page = web1.get(path)
            assert "Keep it as a new account" in page.text, page.text
            claimed = web1.post(path, {"action": "keep"})
            assert claimed.status_code == 303, claimed.text
        for api in (one, two):
            refused = api.get("accounts", headers=auth(account["apiToken"]))
            assert refused.json()["errors"][0]["code"] == 10002
        assert [t.split()[0] for t in on_every_node(cluster, host)] == ["mine", "mine"]
        rows = cluster.sql("SELECT kind, expires_at FROM accounts WHERE id = :a", a=account["id"])
        assert rows == [("permanent", None)]


def test_a_node_that_does_not_acknowledge_is_marked_and_drops_its_routes_when_it_resumes(
    cluster: Cluster,
) -> None:
    """The failure mode docs/operating.md describes: a frozen node (SIGSTOP: alive, its shards
    serving, its control process silent) costs a deploy at most --ack-timeout, is marked, and
    recycles its shards when it runs again."""
    frozen = cluster.planes[0]
    assert frozen.process is not None
    with replica(cluster, 0) as api:
        account = provision(api)["account"]
        host = f"ice.{account['name']}.localhost"
        deploy(api, account, "ice", "before")
        assert cluster.worker(host, via=frozen.port).text.startswith("before")
        # (Nodes killed by another test stay marked: they never come back under their id.)
        before = {row[0] for row in cluster.sql("SELECT id FROM cluster_nodes WHERE must_flush")}
        frozen.process.send_signal(signal.SIGSTOP)
        try:
            deploy(api, account, "ice", "after")  # answered after --ack-timeout
            rows = cluster.sql("SELECT id FROM cluster_nodes WHERE must_flush")
            marked = {row[0] for row in rows} - before
            assert len(marked) == 1, (marked, before)
            # The other node acknowledged: it serves the new version at once.
            assert cluster.worker(host, via=cluster.planes[1].port).text.startswith("after")
        finally:
            frozen.process.send_signal(signal.SIGCONT)
        wait_for(
            "the marked node to drop its routes",
            lambda: (
                not cluster.sql(
                    "SELECT id FROM cluster_nodes WHERE must_flush AND id = ANY(:ids)",
                    ids=list(marked),
                )
            ),
            timeout=30,
            logs=cluster.logs,
        )
        assert "dropping every cached route of this node" in frozen.log()
        wait_for(
            "the resumed node to serve the new version",
            lambda: cluster.worker(host, via=frozen.port).text.startswith("after"),
            timeout=30,
            logs=cluster.logs,
        )


def test_killing_an_api_replica_and_a_data_plane_node_under_load(cluster: Cluster) -> None:
    """tests/cluster/failover.py; then the killed nodes start again and rejoin."""
    figures, _ = kill_an_api_replica_and_a_data_plane_node_under_load(cluster)
    print(figures)  # pytest -s shows the run's figures
    for api in cluster.apis[:1]:
        api.start()
        wait_api(cluster, api)
    for plane in cluster.planes[:1]:
        plane.start()
        wait_plane(cluster, plane)


def test_mayfly_admin_suspend_reaches_every_node_before_it_returns(cluster: Cluster) -> None:
    with replica(cluster, 1) as api:
        account = provision(api)["account"]
        deploy(api, account, "held", "up")
    host = f"held.{account['name']}.localhost"
    assert [t.split()[0] for t in on_every_node(cluster, host)] == ["up", "up"]

    def admin(*args: str) -> None:
        where = ["--database-url", cluster.database_url, "--secret-key", cluster.secret_key]
        where += ["--data-dir", str(cluster.root / "operator")]
        done = subprocess.run(
            [str(MAYFLY), "admin", "account", *args, account["name"], "--json", *where],
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    admin("suspend")
    assert [cluster.worker(host, via=n.port).status_code for n in cluster.planes] == [503, 503]
    admin("resume")
    assert [t.split()[0] for t in on_every_node(cluster, host)] == ["up", "up"]


def test_mayfly_admin_quarantine_lift_reaches_every_node_before_it_returns(
    cluster: Cluster,
) -> None:
    def admin(*args: str) -> None:
        where = ["--database-url", cluster.database_url, "--secret-key", cluster.secret_key]
        where += ["--data-dir", str(cluster.root / "operator")]
        done = subprocess.run(
            [str(MAYFLY), "admin", *args, "--json", *where],
            env=clean_environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    with replica(cluster, 0) as api:
        account = provision(api)["account"]
        deploy(api, account, "paused", "up")
    host = f"paused.{account['name']}.localhost"
    assert [t.split()[0] for t in on_every_node(cluster, host)] == ["up", "up"]
    # A quarantine as the incident rules record it; a suspension and resumption (each notified)
    # makes every node ask for the route again and find it quarantined.
    cluster.sql(
        "INSERT INTO quarantines (account_id, script, version_id, kind, detail, started_at,"
        " until, strikes) VALUES (:a, 'paused', 'v', 'freeze', 'test', now(),"
        " now() + interval '1 hour', 1)",
        a=account["id"],
    )
    admin("account", "suspend", account["name"])
    admin("account", "resume", account["name"])
    answers = [cluster.worker(host, via=n.port) for n in cluster.planes]
    assert [(r.status_code, r.headers.get("x-mayfly-error")) for r in answers] == [
        (503, "quarantined"),
        (503, "quarantined"),
    ]

    admin("quarantine", "lift", account["name"], "paused")
    # The next request after the command returned, on each node: no waiting for a cache.
    assert [t.split()[0] for t in on_every_node(cluster, host)] == ["up", "up"]


def test_haproxy_closes_a_connection_that_trickles_its_head(cluster: Cluster) -> None:
    """Slowloris against the proxy: a request head sent a header line every 0.5 s never ends, on
    the API and the Workers frontends alike; HAProxy's `timeout http-request` answers its own 408
    and closes (an idle timeout alone, `timeout client`, restarts on each byte for ever)."""
    sockets = [
        socket.create_connection(("127.0.0.1", p)) for p in (cluster.api_port, cluster.workers_port)
    ]
    answers = {s: b"" for s in sockets}
    closed: set[socket.socket] = set()
    try:
        for s in sockets:
            s.sendall(b"GET / HTTP/1.1\r\nHost: hello.example.localhost\r\n")
            s.setblocking(False)
        deadline = time.monotonic() + 60  # a timeout for the wait, well past HAProxy's 10 s
        line = 0
        while len(closed) < len(sockets) and time.monotonic() < deadline:
            readable, _, _ = select.select([s for s in sockets if s not in closed], [], [], 0.5)
            for s in readable:
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    data = b""
                answers[s] += data
                if not data:
                    closed.add(s)
            line += 1
            for s in sockets:
                if s not in closed:
                    with contextlib.suppress(OSError):
                        s.sendall(f"X-Trickle-{line}: {line}\r\n".encode())
    finally:
        for s in sockets:
            s.close()
    assert len(closed) == len(sockets), answers
    for answer in answers.values():
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"408 Request Time-out" in answer, answer  # HAProxy's page, not a replica's
