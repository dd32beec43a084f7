"""A temporary account for an agent: challenge, proof of work, account, cache (DESIGN §4)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from mayfly.sdk.client import MayflyClient
from mayfly.sdk.credentials import TemporaryAccountCache
from mayfly.sdk.models import Challenge, TemporaryAccount


class Listener(Protocol):
    """Where a slow workflow reports what it is doing (the CLI renders it on stderr)."""

    def notice(self, message: str) -> None: ...

    def begin(self, task: str, total: int = 0) -> None: ...

    def advance(self, done: int, total: int) -> None: ...

    def end(self, task: str, seconds: float) -> None: ...

    def temporary_account(self, account: TemporaryAccount, created: bool) -> None:
        """The temporary account a command is about to use (just created, or reused)."""


class QuietListener:
    def notice(self, message: str) -> None:
        pass

    def begin(self, task: str, total: int = 0) -> None:
        pass

    def advance(self, done: int, total: int) -> None:
        pass

    def end(self, task: str, seconds: float) -> None:
        pass

    def temporary_account(self, account: TemporaryAccount, created: bool) -> None:
        pass


@dataclass
class Timings:
    """Seconds spent per phase, for progress output and the benchmark."""

    phases: dict[str, float] = field(default_factory=dict)

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds

    def milliseconds(self) -> dict[str, int]:
        return {name: round(seconds * 1000) for name, seconds in self.phases.items()}


def terms_notice(challenge: Challenge) -> str:
    """What the agent agrees to by provisioning: the server's terms, linked when it names them."""
    if challenge.terms_url and challenge.privacy_url:
        return (
            f"Continuing means you accept the terms of service ({challenge.terms_url}) "
            f"and the privacy policy ({challenge.privacy_url})."
        )
    return "Continuing means you accept this Mayfly server's terms of service and privacy policy."


def provision_temporary_account(
    client: MayflyClient,
    cache: TemporaryAccountCache,
    listener: Listener,
    timings: Timings | None = None,
    event_code: str | None = None,
) -> TemporaryAccount:
    """Create a temporary account (solving the proof of work) and cache it for this API URL.

    With `event_code`, the account counts against that event's budget and lives its TTL."""
    timings = timings if timings is not None else Timings()
    started = time.perf_counter()
    challenge = client.request_challenge()
    timings.add("provision", time.perf_counter() - started)
    listener.notice(terms_notice(challenge))
    task = "Solving proof-of-work challenge"
    listener.begin(task, challenge.k)
    started = time.perf_counter()
    from mayfly.sdk.pow import solve_challenge  # hashlib: only when an account is made

    checkpoints = solve_challenge(challenge, listener.advance)
    solved = time.perf_counter() - started
    timings.add("pow", solved)
    listener.end(task, solved)
    started = time.perf_counter()
    account = client.create_temporary_account(challenge, checkpoints, event_code)
    timings.add("provision", time.perf_counter() - started)
    try:
        cache.save(client.api_url, account)
    except OSError as exc:
        listener.notice(
            f"Warning: could not cache the temporary account in {cache.path} ({exc}); "
            "its API token is only in this output."
        )
    return account
