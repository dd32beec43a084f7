"""Prometheus metrics (`--metrics-port`), all named `mayfly_…`, in a registry of each platform.

What is measured and where:
- API requests and latency, by route class (the route's path template, never the raw path),
  method and status: an ASGI middleware on the public app (api/metrics.py). Provisioning
  (challenges issued, accounts created, proof-of-work failures) and limit refusals (429) are
  counted from the same answers.
- Worker requests: the dispatcher does not report each request (that would cost a round trip per
  request), so what is counted is what the data plane asks the control plane: route lookups by
  the answer's status (a lookup per host a shard does not hold in its route cache).
- Shard restarts by cause and quarantines: the supervisor's events and the incidents the
  data plane reports, through callbacks app.py wires (the runtime does not import this module).
- The reaper: accounts deleted, passes and their duration; its lag (the age of the oldest
  expired account still there) is read at scrape time.
- The database pools: connections checked out and open, read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import Engine

RESTART_CAUSES = ("start-failed", "exited", "unresponsive", "memory", "no-ack", "recycle")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.api_requests = self._counter(
            "mayfly_api_requests",
            "API and page requests answered, by route class, method and status.",
            "route",
            "method",
            "status",
        )
        self.api_latency = self._histogram(
            "mayfly_api_request_duration_seconds",
            "Time to answer an API or page request, by route class and method.",
            "route",
            "method",
        )
        self.worker_route_lookups = self._counter(
            "mayfly_worker_route_lookups",
            "Routes the data plane asked for (Workers' hosts not in a shard's cache), by answer.",
            "status",
        )
        self.shard_restarts = self._counter(
            "mayfly_shard_restarts", "Data-plane shards replaced, by cause.", "cause"
        )
        self.incidents = self._counter(
            "mayfly_incidents", "Shards killed by a Worker's doing (incidents), by kind.", "kind"
        )
        self.quarantines = self._counter(
            "mayfly_quarantines", "Workers quarantined after an incident."
        )
        self.account_quarantines = self._counter(
            "mayfly_account_quarantines",
            "Whole accounts quarantined because several of their Workers were.",
        )
        self.address_taints = self._counter(
            "mayfly_address_taints",
            "Client addresses tainted (their new temporary accounts cost the maximum proof of work "
            "and fewer are allowed) because a Worker of an account provisioned from them was "
            "quarantined.",
        )
        self.challenges = self._counter(
            "mayfly_provisioning_challenges", "Proof-of-work challenges issued."
        )
        self.accounts_created = self._counter(
            "mayfly_provisioning_accounts", "Temporary accounts created."
        )
        self.pow_failures = self._counter(
            "mayfly_provisioning_pow_failures",
            "Account creations refused for a wrong, expired or reused proof of work.",
        )
        self.limit_refusals = self._counter(
            "mayfly_limit_refusals",
            "Requests refused by a rate or abuse limit (429), by route class.",
            "route",
        )
        self.reaped = self._counter(
            "mayfly_reaper_accounts_deleted", "Expired accounts the reaper deleted."
        )
        self.reaper_passes = self._histogram(
            "mayfly_reaper_pass_duration_seconds", "Duration of reaper passes."
        )
        self.reaper_lag = self._gauge(
            "mayfly_reaper_lag_seconds",
            "Age of the oldest expired temporary account not yet deleted (0: none).",
        )
        self.pow_work = self._gauge(
            "mayfly_provisioning_pow_work",
            "Hashes (k × g) a proof-of-work challenge asks now of an idle address: the adaptive "
            "difficulty under the platform-wide provisioning pressure.",
        )
        self.pow_pressure = self._gauge(
            "mayfly_provisioning_pow_pressure",
            "Platform-wide provisioning pressure, 0 (idle: the minimum work) to 1 (the maximum).",
        )
        self.db_connections = self._gauge(
            "mayfly_db_pool_connections",
            "Database connections of the pools, by pool (write, read) and state.",
            "pool",
            "state",
        )

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(name, doc, labels, registry=self.registry)

    def _histogram(self, name: str, doc: str, *labels: str) -> Histogram:
        return Histogram(name, doc, labels, registry=self.registry)

    def watch_reaper_lag(self, lag: Callable[[], float]) -> None:
        self.reaper_lag.set_function(lag)

    def watch_pow(self, work: Callable[[], float], pressure: Callable[[], float]) -> None:
        self.pow_work.set_function(work)
        self.pow_pressure.set_function(pressure)

    def watch_pools(self, pools: dict[str, Engine]) -> None:
        for name, engine in pools.items():
            pool = engine.pool
            for state, read in (("checked_out", "checkedout"), ("open", "size")):
                reader = getattr(pool, read, None)
                if callable(reader):
                    self.db_connections.labels(name, state).set_function(_as_float(reader))

    def shard_event(self, kind: str) -> None:
        if kind in RESTART_CAUSES:
            self.shard_restarts.labels(kind).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _as_float(read: Callable[[], object]) -> Callable[[], float]:
    def value() -> float:
        result = read()
        return float(result) if isinstance(result, int | float) else 0.0

    return value
