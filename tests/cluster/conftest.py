"""A Mayfly cluster on loopback: PostgreSQL (a fresh schema), HAProxy running deploy/haproxy.cfg,
two API replicas (`--role api`) and two data-plane nodes (`--role dataplane`, one shard each).

Every process is a real `mayfly serve` (or `haproxy`) subprocess on free ports; clients go through
HAProxy's API and Workers frontends, or straight to one replica or node when a test says which.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import POSTGRES_URL, postgres_available
from tests.e2e.conftest import MAYFLY, clean_environment, free_port

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
INTERNAL_HEADER = "x-mayfly-internal-secret"


@dataclass
class Node:
    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str]
    port: int  # the public API's (replicas) or the Workers listener's (data-plane nodes)
    internal_port: int = 0
    metrics_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def metric(self, name: str) -> float:
        """The sum of a Prometheus metric's samples on this replica's --metrics-port."""
        page = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in page.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Cluster:
    root: Path
    database_url: str
    secret_key: str
    cluster_secret: str
    api_port: int
    workers_port: int
    internal_port: int
    apis: list[Node] = field(default_factory=list)
    planes: list[Node] = field(default_factory=list)
    haproxy: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def worker(self, host: str, via: int | None = None, path: str = "/") -> httpx.Response:
        """A Worker request through HAProxy, or straight to the Workers port `via`."""
        port = via or self.workers_port
        with httpx.Client(timeout=30) as client:
            return client.get(f"http://127.0.0.1:{port}{path}", headers={"host": host})

    def logs(self) -> str:
        return "\n".join(f"=== {n.name}\n{n.log()[-4000:]}" for n in [*self.apis, *self.planes])

    def serve_args(self, role: str, data_dir: Path, *extra: str) -> list[str]:
        return [
            str(MAYFLY),
            "serve",
            "--role",
            role,
            "--database-url",
            self.database_url,
            "--cluster-secret",
            self.cluster_secret,
            "--data-dir",
            str(data_dir),
            "--domain",
            "localhost",
            "--workers-url",
            f"http://localhost:{self.workers_port}",
            "--public-url",
            self.api_url,
            "--pow-k",
            "8",
            "--pow-g",
            "50",
            # Every test provisions from 127.0.0.1, and the replicas count addresses together in
            # PostgreSQL: the per-address limits would refuse the suite's 21st account.
            "--accounts-per-hour",
            "10000",
            "--challenges-per-minute",
            "10000",
            "--log-level",
            "info",
            *extra,
        ]

    def add_api(self, name: str, *, secret_key: str | None = None) -> Node:
        port, internal, metrics = free_port(), free_port(), free_port()
        args = self.serve_args(
            "api",
            self.root / name,
            "--secret-key",
            secret_key or self.secret_key,
            "--api-port",
            str(port),
            "--internal-listen",
            f"127.0.0.1:{internal}",
            "--reaper-interval",
            "1",
            "--cron-tick",
            "1",
            "--metrics-port",
            str(metrics),
        )
        node = Node(name, args, self.root / f"{name}.log", clean_environment(), port, internal)
        node.metrics_port = metrics
        return node

    def sql(self, statement: str, **params: object) -> list[Any]:
        """A statement on the cluster's schema (tests move time by moving stored instants)."""
        engine = create_engine(self.database_url)
        try:
            with engine.begin() as conn:
                result = conn.execute(text(statement), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            engine.dispose()

    def add_plane(self, name: str) -> Node:
        port = free_port()
        args = self.serve_args(
            "dataplane",
            self.root / name,
            "--control-plane-url",
            f"http://127.0.0.1:{self.internal_port}",
            "--workers-port",
            str(port),
            "--shards",
            "1",
            "--cron-tick",
            "1",
        )
        return Node(name, args, self.root / f"{name}.log", clean_environment(), port)

    def start_haproxy(self) -> None:
        a, b = self.apis
        p, q = self.planes
        env = dict(
            os.environ,
            MAYFLY_API_BIND=f"127.0.0.1:{self.api_port}",
            MAYFLY_INTERNAL_BIND=f"127.0.0.1:{self.internal_port}",
            MAYFLY_WORKERS_BIND=f"127.0.0.1:{self.workers_port}",
            MAYFLY_CLUSTER_SECRET=self.cluster_secret,
            MAYFLY_API1=f"127.0.0.1:{a.port}",
            MAYFLY_API2=f"127.0.0.1:{b.port}",
            MAYFLY_API1_INTERNAL_PORT=str(a.internal_port),
            MAYFLY_API2_INTERNAL_PORT=str(b.internal_port),
            MAYFLY_API1_INTERNAL=f"127.0.0.1:{a.internal_port}",
            MAYFLY_API2_INTERNAL=f"127.0.0.1:{b.internal_port}",
            MAYFLY_DP1=f"127.0.0.1:{p.port}",
            MAYFLY_DP2=f"127.0.0.1:{q.port}",
        )
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        with (self.root / "haproxy.log").open("ab") as log:
            self.haproxy = subprocess.Popen(
                [haproxy, "-db", "-f", str(HAPROXY_CFG)], env=env, stdout=log, stderr=log
            )

    def stop(self) -> None:
        for node in [*self.planes, *self.apis]:
            node.stop()
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            self.haproxy.wait(timeout=10)


def wait_for(what: str, check: object, timeout: float = 180.0, logs: object = None) -> None:
    """Polls `check()` (a callable) until it is true; fails with `logs()` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (httpx.TransportError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout} s\n{logs() if logs else ''}")  # type: ignore[operator]


def _internal_health(node: Node, secret: str) -> bool:
    answer = httpx.get(
        f"http://127.0.0.1:{node.internal_port}/internal/v1/health",
        headers={INTERNAL_HEADER: secret},
        timeout=2,
    )
    return answer.status_code == 200


def _accepts(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_api(cluster: Cluster, node: Node) -> None:
    def up() -> bool:
        if node.process is not None and node.process.poll() is not None:
            raise AssertionError(f"{node.name} exited:\n{node.log()}")
        return _internal_health(node, cluster.cluster_secret) and (
            httpx.get(node.url + "/", timeout=2).status_code == 200
        )

    wait_for(f"{node.name} up", up, logs=cluster.logs)


def wait_plane(cluster: Cluster, node: Node) -> None:
    def up() -> bool:
        if node.process is not None and node.process.poll() is not None:
            raise AssertionError(f"{node.name} exited:\n{node.log()}")
        return _accepts(node.port) and "Workers served at" in node.log()

    wait_for(f"{node.name} up", up, logs=cluster.logs)


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema of the test PostgreSQL (dropped after): its URL."""
    schema = "cluster_" + secrets.token_hex(6)
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextlib.contextmanager
def running_cluster(root: Path, database_url: str) -> Iterator[Cluster]:
    """Two API replicas, two data-plane nodes and HAProxy in front, all up (bench/ uses it too)."""
    c = Cluster(
        root=root,
        database_url=database_url,
        secret_key=secrets.token_urlsafe(32),
        cluster_secret=secrets.token_urlsafe(32),
        api_port=free_port(),
        workers_port=free_port(),
        internal_port=free_port(),
    )
    try:
        first = c.add_api("api1")
        c.apis.append(first)
        first.start()  # it migrates the schema before the others start
        wait_api(c, first)
        second = c.add_api("api2")
        c.apis.append(second)
        second.start()
        c.planes = [c.add_plane("dp1"), c.add_plane("dp2")]
        c.start_haproxy()
        for plane in c.planes:
            plane.start()
        wait_api(c, second)
        for plane in c.planes:
            wait_plane(c, plane)
        wait_for(
            "HAProxy up",
            lambda: httpx.get(c.api_url + "/", timeout=2).status_code == 200,
            logs=c.logs,
        )
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def postgres_schema_url() -> Iterator[str]:
    if not postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable at " + POSTGRES_URL)
        pytest.skip("PostgreSQL is not reachable")
    with postgres_schema() as url:
        yield url


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres_schema_url: str
) -> Iterator[Cluster]:
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        if os.environ.get("CI"):
            pytest.fail("haproxy is not installed")
        pytest.skip("haproxy is not installed")
    with running_cluster(tmp_path_factory.mktemp("cluster"), postgres_schema_url) as c:
        yield c
