"""Two API replicas and two data-plane nodes on one PostgreSQL, behind deploy/haproxy.cfg.

What goes through either replica is seen on both nodes on the next request after the API answers:
deploys (NOTIFY + acknowledgements), secrets (the shared platform key), KV, tails and claims.
"""

from __future__ import annotations

import httpx
import pytest

from tests.cluster.conftest import Cluster, Node
from tests.conftest import auth, provision, upload_body

pytestmark = [pytest.mark.cluster, pytest.mark.postgres]


def replica(cluster: Cluster, index: int) -> httpx.Client:
    return httpx.Client(base_url=cluster.apis[index].url + "/client/v4/", timeout=60)


def source(text: str) -> bytes:
    return (
        "export default { async fetch(request, env) {"
        f" return new Response({text!r} + ' ' + (env.SECRET || '') + ' ' +"
        " ((env.KV && await env.KV.get('k')) || '')); } };"
    ).encode()


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
