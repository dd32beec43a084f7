"""Node roles and cluster settings (issue 13, item 2): refused with a message saying what is
missing, and the pure helpers of the cluster code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mayfly.services.operations.cluster import MAX_PAYLOAD, chunks, conninfo
from mayfly.services.operations.cluster_tails import batches
from mayfly.settings import Settings


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_the_default_is_one_node_doing_everything(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert s.role == "all" and s.serves_api and s.runs_data_plane
    assert not settings(tmp_path, runtime=False).runs_data_plane
    api = settings(tmp_path, role="api")
    assert api.serves_api and not api.runs_data_plane


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"role": "worker"}, "all, api or dataplane"),
        ({"role": "dataplane"}, "needs control_plane_url"),
        ({"role": "dataplane", "control_plane_url": "http://10.0.0.1:8790"}, "cluster_secret"),
        (
            {
                "role": "dataplane",
                "control_plane_url": "http://10.0.0.1:8790",
                "cluster_secret": "s",
            },
            "PostgreSQL",
        ),
        ({"internal_listen": "10.0.0.1:8790"}, "needs cluster_secret"),
        ({"internal_listen": "8790", "cluster_secret": "s"}, "host:port"),
    ],
)
def test_incomplete_cluster_settings_are_refused(
    tmp_path: Path, values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        settings(tmp_path, **values)


def test_a_data_plane_node_needs_no_platform_key(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        role="dataplane",
        control_plane_url="http://10.0.0.1:8790",
        cluster_secret="s",
        database_url="postgresql+psycopg://mayfly@10.0.0.5/mayfly",
    )
    assert s.runs_data_plane and not s.serves_api and not s.secret_key


def test_conninfo_keeps_the_url_s_options() -> None:
    args = conninfo("postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dx")
    assert args == {
        "host": "127.0.0.1",
        "port": 5432,
        "user": "postgres",
        "dbname": "test",
        "options": "-csearch_path=x",
    }


def test_tail_batches_fit_a_notify_payload() -> None:
    small = [{"outcome": "ok", "logs": [{"message": ["x" * 100]}]} for _ in range(100)]
    huge = {"outcome": "exception", "eventTimestamp": 1, "logs": [{"message": ["y" * 20_000]}]}
    grouped = batches([*small, huge], 7500)
    assert all(len(json.dumps(group)) < 7500 + 200 for group in grouped)
    assert sum(len(group) for group in grouped) == 101
    assert grouped[-1][-1]["outcome"] == "exception"
    assert "too large" in grouped[-1][-1]["logs"][0]["message"][0]


def test_many_hosts_are_invalidated_in_several_notifications_not_a_flush() -> None:
    hosts = [f"worker-{i}.some-account-name.workers.example.net" for i in range(1000)]
    grouped = chunks(hosts)
    assert len(grouped) > 1
    assert [h for group in grouped for h in group] == hosts
    assert all(len(json.dumps({"id": "x" * 16, "hosts": g})) < MAX_PAYLOAD for g in grouped)
    assert chunks(["one"]) == [["one"]]
