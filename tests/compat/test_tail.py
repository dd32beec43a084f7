"""`wrangler tail` (spec §5.12) against `mayfly serve` with its data plane: wrangler runs in the
background, the deployed Worker is requested, and the Worker's own console.log lines and exceptions
arrive in wrangler's output; SIGINT stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.compat.conftest import (
    NODE,
    WRANGLER_JS,
    MayflyServer,
    WranglerUser,
    run_wrangler,
    seed_update_check,
    strip_ansi,
    wrangler_environment,
)
from tests.compat.data_plane import plain_worker, request_worker, temporary_account_name

pytestmark = [
    pytest.mark.compat,
    pytest.mark.parametrize("mayfly_server", [True], indirect=True),
]

WORKER = "tail-worker"


class BackgroundWrangler:
    """A long-running wrangler command whose output is collected as it comes."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], user: WranglerUser):
        seed_update_check(user.tmpdir)
        self.args = args
        self.process = subprocess.Popen(
            [str(NODE), str(WRANGLER_JS), *args],
            cwd=cwd,
            env=wrangler_environment(user.home, env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout)),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(strip_ansi(line))

    @property
    def output(self) -> str:
        return "".join(self.stdout)

    @property
    def errors(self) -> str:
        return "".join(self.stderr)

    def interrupt(self, timeout: float = 30) -> int:
        """SIGINT, as Ctrl-C; returns the exit code."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        return code

    def close(self) -> None:
        """Kills it if it still runs (its own process group, started here) and closes its pipes."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        for reader in self._readers:
            reader.join(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __str__(self) -> str:
        return (
            f"$ wrangler {' '.join(self.args)}  (exit {self.process.returncode})\n"
            f"----- stdout -----\n{self.output}\n----- stderr -----\n{self.errors}"
        )


@contextmanager
def tailing(anon: Anon, *args: str) -> Iterator[BackgroundWrangler]:
    tail = BackgroundWrangler(
        ["tail", WORKER, *args, "--temporary"], anon.project, anon.server.env(), anon.user
    )
    try:
        yield tail
    finally:
        tail.close()


def json_events(text: str) -> list[dict[str, Any]]:
    """`--format json` prints each event as indented JSON, one after the other."""
    decoder = json.JSONDecoder()
    events, at = [], 0
    while (start := text.find("{", at)) >= 0:
        try:
            event, at = decoder.raw_decode(text, start)
        except ValueError:
            break  # the rest is still being written
        events.append(event)
    return events


class Anon:
    def __init__(self, server: MayflyServer, user: WranglerUser, project: Path):
        self.server, self.user, self.project = server, user, project

    def request(self, path: str) -> int:
        account = temporary_account_name(self.user)
        return request_worker(self.server, account, WORKER, path).status_code

    def until(self, arrived: Callable[[], bool], path: str, timeout: float = 60) -> None:
        """Request `path` (+ a counter) every half second until `arrived()`: wrangler may still be
        starting, and events of requests made before it connected are not sent to it."""
        deadline, n = time.monotonic() + timeout, 0
        while not arrived():
            assert time.monotonic() < deadline, "nothing arrived in time"
            self.request(f"{path}{n}")
            n += 1
            time.sleep(0.5)


@pytest.fixture(scope="module")
def anon(mayfly_server: MayflyServer, new_user: Any, new_project: Any) -> Anon:
    anon = Anon(mayfly_server, new_user("tail"), plain_worker(new_project, WORKER))
    deployed = run_wrangler(["deploy", "--temporary"], anon.project, mayfly_server.env(), anon.user)
    assert deployed.exit_code == 0, str(deployed)
    return anon


def test_tail_json_shows_the_workers_console_log(anon: Anon) -> None:
    with tailing(anon, "--format", "json") as tail:
        # The event parsed whole: its last lines have arrived.
        anon.until(lambda: any(e["logs"] for e in json_events(tail.output)), "/json-")
        code = tail.interrupt()
    assert code in (0, 130), str(tail)  # spec §5.12: racy
    events = [e for e in json_events(tail.output) if e["logs"]]
    assert events, str(tail)
    event = events[0]
    [log] = event["logs"]
    assert log["level"] == "log"
    [message] = log["message"]
    assert message.startswith("tail line /json-")
    assert event["outcome"] == "ok"
    assert event["scriptName"] == WORKER
    assert event["exceptions"] == []
    account = temporary_account_name(anon.user)
    path = message.removeprefix("tail line ")
    assert event["event"]["request"]["url"] == f"http://{WORKER}.{account}.localhost{path}"
    assert event["event"]["request"]["method"] == "GET"
    assert event["event"]["response"] == {"status": 200}
    assert isinstance(event["eventTimestamp"], int)
    assert "Tail connection lost" not in tail.errors, str(tail)


def test_tail_pretty_shows_logs_and_exceptions(anon: Anon) -> None:
    with tailing(anon, "--format", "pretty") as tail:
        anon.until(lambda: "waiting for logs..." in tail.output, "/early-")
        assert f"Connected to {WORKER}, waiting for logs..." in tail.output
        anon.until(lambda: "(log) tail line /pretty-" in tail.output, "/pretty-")
        assert anon.request("/throw") == 500
        # wrangler prints exceptions as errors, on stderr
        anon.until(lambda: "thrown for the tail" in tail.errors, "/after-throw-")
        code = tail.interrupt()
    assert code in (0, 130), str(tail)
    account = temporary_account_name(anon.user)
    assert f"GET http://{WORKER}.{account}.localhost/pretty-" in tail.output, str(tail)
    assert f"GET http://{WORKER}.{account}.localhost/throw - Exception Thrown @" in tail.output
    assert "  (log) about to throw" in tail.output
    assert "[ERROR] Error: thrown for the tail" in tail.errors, str(tail)
    assert "at Object.fetch (index.js:" in tail.errors
    assert "Stopping tail..." in tail.output


def test_tail_with_status_error_only_shows_failures(anon: Anon) -> None:
    with tailing(anon, "--format", "json", "--status", "error") as tail:
        anon.until(
            lambda: any(e["outcome"] == "exception" for e in json_events(tail.output)), "/throw?n="
        )
        tail.interrupt()
    events = json_events(tail.output)
    assert events, str(tail)
    assert {e["outcome"] for e in events} == {"exception"}, str(tail)
    assert {urlsplit(e["event"]["request"]["url"]).path for e in events} == {"/throw"}
