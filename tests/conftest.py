"""Shared fixtures: an in-process platform on SQLite or PostgreSQL, with a clock tests can move."""

from __future__ import annotations

import json
import os
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from starlette.testclient import TestClient

from mayfly.app import Platform
from mayfly.services.temporary import pow
from mayfly.settings import Settings
from tests import pow_solver
from tests.clock import ManualClock

POSTGRES_URL = os.environ.get(
    "MAYFLY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def postgres_available() -> bool:
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return True
    except Exception:
        return False


IN_CI = bool(os.environ.get("CI"))


def missing(what: str) -> None:
    """A dependency the test needs is not installed: skip it locally, fail it in CI (`.ci/run`
    sets CI), where everything is installed and a skip would let the test pass vacuously."""
    if IN_CI:
        pytest.fail(f"{what} (CI is set: .ci/run installs everything, so this is a failure)")
    pytest.skip(what)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With CI set no test may be skipped: a skip (pytest.skip, skipif, importorskip) is reported
    as a failure that says why it was skipped. Expected failures are strict (pyproject.toml)."""
    outcome: Any = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped with CI set ({reason}): a CI run must run every test"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """The same for a whole module skipped at collection (a module-level skip or importorskip)."""
    outcome: Any = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped with CI set ({reason}): a CI run must run every test"


# Parallel runs (scripts/check runs pytest-xdist with --dist loadgroup): each test module is one
# unit of work, so its module-scoped servers start once; the timing-sensitive suites (real workerd
# shards, supervision, recycling, tenants that attack them) are one unit together, run one test
# after another on one worker, as in a serial run. (xdist's own loadgroup marks its units by
# rewriting node ids, which pytest 9 ignores: the scheduler below decides from the node id.)
SERIAL = ("tests/runtime/", "tests/attacks/")


def unit_of_work(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return "serial" if path.startswith(SERIAL) else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByUnitOfWork(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of_work(nodeid)

    return ByUnitOfWork(config, log)


def _rename(item: pytest.Item, nodeid: str) -> None:
    if hasattr(item, "_id"):  # pytest 9: a structured id
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(nodeid)
    else:
        item._nodeid = nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """schemathesis names its items `test[GET /path]` but gives them all the function's node id;
    xdist schedules by node id, so all but one operation would silently not run."""
    counts = Counter(item.nodeid for item in items)
    for item in items:
        if counts[item.nodeid] > 1 and not item.nodeid.endswith("::" + item.name):
            _rename(item, f"{item.nodeid.rsplit('::', 1)[0]}::{item.name}")
    repeated = [n for n, k in Counter(item.nodeid for item in items).items() if k > 1]
    assert not repeated, f"test node ids must be unique (xdist runs one of each): {repeated}"


# Lines a suite prints at the end of the run (the fuzz run's counts): appended in
# pytest_sessionfinish, sent back by pytest-xdist's workers, printed once by the controller.
SUMMARY: list[str] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller prints them
        workeroutput["summary"] = SUMMARY


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    SUMMARY.extend(getattr(node, "workeroutput", {}).get("summary", []))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in SUMMARY:
        terminalreporter.write_line(line)


_PG = None


def _pg() -> bool:
    global _PG
    if _PG is None:
        _PG = postgres_available()
    return _PG


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    if not _pg():
        missing("PostgreSQL is not reachable at " + POSTGRES_URL)
    schema = "t_" + secrets.token_hex(6)
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mayfly.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "pow_k": 8,
        "pow_g": 50,
        "runtime": False,
        "api_port": 8787,
    }
    values.update(overrides)
    if str(values.get("database_url", "")).startswith("postgresql") and not values.get(
        "secret_key"
    ):
        values["secret_key"] = "test-platform-key"  # a shared database requires one
    return Settings(**values)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def platform(settings: Settings, clock: ManualClock) -> Iterator[Platform]:
    p = Platform.create(settings, clock=clock)
    yield p
    p.db.dispose()


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(platform.public_app(), base_url="http://testserver/client/v4/") as c:
        yield c


def solve_challenge(challenge: dict[str, Any]) -> str:
    import base64

    seed = pow.b64url_decode(challenge["seed"])
    return base64.b64encode(pow_solver.solve(seed, challenge["k"], challenge["g"])).decode()


def provision(client: TestClient) -> dict[str, Any]:
    """Run wrangler's provisioning flow; returns the create-account result."""
    challenge = client.post("provisioning/previews/challenge", content="{}").json()["result"]
    response = client.post(
        "provisioning/previews",
        content=json.dumps(
            {
                "acceptTermsOfService": "yes",
                "challengeToken": challenge["challengeToken"],
                "solution": {"checkpoints": solve_challenge(challenge)},
            }
        ),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


HELLO = b'export default { async fetch(request, env) { return new Response("hello " + env.GREETING); } };\n'


def upload_body(
    main: str = "index.js",
    modules: dict[str, tuple[bytes, str]] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    """httpx `files=` for a Worker upload: a metadata part and one part per module."""
    modules = modules or {main: (HELLO, "application/javascript+module")}
    meta = {"main_module": main, "compatibility_date": "2025-01-01", **metadata}
    files: list[tuple[str, Any]] = [("metadata", (None, json.dumps(meta), "application/json"))]
    for name, (data, ctype) in modules.items():
        files.append((name, (name, data, ctype)))
    return {"files": files}
