"""Per-key sliding windows kept in PostgreSQL, so that every API replica counts the same events.

`SlidingWindowLimiter.share` routes a limiter here when the database is shared: a client then gets
a limit once across the cluster, not once per replica. A hit is checked and counted in one
transaction under an advisory lock on its (limiter, key), so two replicas cannot both let the
limit-th event through. Rows older than their window are deleted by the housekeeper's prune.
"""

from __future__ import annotations

import math

from sqlalchemy import text

from mayfly.storage.database import Database

LOCK = "SELECT pg_advisory_xact_lock(hashtext(:limiter), hashtext(:key))"


class SharedHits:
    def __init__(self, db: Database, name: str):
        self.db = db
        self.name = name

    def hit(self, key: str, limit: int, window: float, now: float) -> int:
        """Counts one event unless the limit is reached; returns the wait (0: counted)."""
        with self.db.begin() as conn:
            conn.execute(text(LOCK), {"limiter": self.name, "key": key})
            wait = self._wait(conn, key, limit, window, now)
            if not wait:
                self._insert(conn, key, now)
            return wait

    def retry_after(self, key: str, limit: int, window: float, now: float) -> int:
        with self.db.read() as conn:
            return self._wait(conn, key, limit, window, now)

    def record(self, key: str, now: float) -> None:
        with self.db.begin() as conn:
            self._insert(conn, key, now)

    def count(self, key: str, window: float, now: float) -> int:
        with self.db.read() as conn:
            found = conn.execute(
                text(
                    "SELECT count(*) FROM cluster_limit_hits "
                    "WHERE limiter = :limiter AND key = :key AND at > :since"
                ),
                {"limiter": self.name, "key": key, "since": now - window},
            ).scalar_one()
        return int(found)

    def reset(self, key: str) -> None:
        with self.db.begin() as conn:
            conn.execute(
                text("DELETE FROM cluster_limit_hits WHERE limiter = :limiter AND key = :key"),
                {"limiter": self.name, "key": key},
            )

    def prune(self, window: float, now: float) -> int:
        """Deletes the hits that can no longer decide anything; returns how many keys went."""
        with self.db.begin() as conn:
            gone = conn.execute(
                text(
                    "WITH gone AS (DELETE FROM cluster_limit_hits "
                    "WHERE limiter = :limiter AND at <= :horizon RETURNING key) "
                    "SELECT count(DISTINCT key) FROM gone"
                ),
                {"limiter": self.name, "horizon": now - window},
            ).scalar_one()
        return int(gone)

    def keys(self) -> int:
        with self.db.read() as conn:
            found = conn.execute(
                text("SELECT count(DISTINCT key) FROM cluster_limit_hits WHERE limiter = :limiter"),
                {"limiter": self.name},
            ).scalar_one()
        return int(found)

    def _wait(self, conn: object, key: str, limit: int, window: float, now: float) -> int:
        # The limit-th most recent hit inside the window decides when the key may act again.
        rows = conn.execute(  # type: ignore[attr-defined]
            text(
                "SELECT at FROM cluster_limit_hits WHERE limiter = :limiter AND key = :key "
                "AND at > :since ORDER BY at DESC LIMIT :limit"
            ),
            {"limiter": self.name, "key": key, "since": now - window, "limit": limit},
        ).all()
        if len(rows) < limit:
            return 0
        expires = float(rows[-1][0]) + window
        return max(1, math.ceil(expires - now)) if expires > now else 0

    def _insert(self, conn: object, key: str, now: float) -> None:
        conn.execute(  # type: ignore[attr-defined]
            text("INSERT INTO cluster_limit_hits (limiter, key, at) VALUES (:limiter, :key, :at)"),
            {"limiter": self.name, "key": key, "at": now},
        )
