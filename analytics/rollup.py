"""Per-day rollups of the record, so a year of conversations answers as fast as a week (docs/KPIS.md "Long ranges").

Every write to the record bumps the version of each day whose figures it can change (analytics/db.py: mark_days).
Once a day has been quiet for ``SETTLE_S``, any gateway rolls it up: in one transaction it reads the day's version,
computes every part of analytics/kpis.py for that day per channel and language, replaces the day's rollup rows and
records the version it read and the next moment the clock alone changes one of the day's figures (a complaint
turning 24 h old unanswered: ``NEXT_CHANGE``). The dashboard reads a day from its rollup only while that version is
still the day's version and that moment has not come; otherwise it reads the day's events until it is rolled again.
Rolling is idempotent, so N gateways rolling the same day at once only waste work (the version they record is the
one their rows were built from).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from analytics import db
from analytics.kpis import SETTLE_S, Kpis
from conversations import metrics
from conversations.redis_client import stopping

logger = logging.getLogger(__name__)
ROLL_EVERY_S = 60.0
DAYS_PER_ROUND = 31  # a record that was never rolled (an upgrade) catches up a month per round
STATS_EVERY_S = 3600.0  # SQLite's planner statistics are refreshed this often (PostgreSQL's autovacuum does it there)


class Roller:
    def __init__(self, engine: Engine, kpis: Kpis) -> None:
        self.engine = engine
        self.kpis = kpis
        self.stats_at = 0.0

    def refresh_stats(self, now: float) -> None:
        """SQLite plans a day's queries from the conversations only with statistics: without them it walks every
        event of a kind (a day's rollup of a 100k-conversation year: 0.6 s instead of 0.3 s, growing with the record).
        ANALYZE of such a record takes 0.2 s (a bounded ``analysis_limit`` one misjudged the kind index)."""
        if self.engine.dialect.name != "sqlite" or now - self.stats_at < STATS_EVERY_S:
            return
        with self.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        self.stats_at = now

    def due(self, now: float) -> list[str]:
        """Settled days whose rollup is missing, older than their data or past a clock-driven change, oldest first."""
        d = db.rollup_days.c
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(d.day).where((d.rolled_version.is_(None)) | (d.rolled_version != d.version)
                                    | (d.valid_until <= now),
                                    d.last_ts <= now - SETTLE_S).order_by(d.day)).scalars())

    def roll_day(self, day: str, now: float) -> bool:
        """Roll one day up; False when it is not settled (or no longer has data)."""
        d = db.rollup_days.c
        with self.engine.begin() as conn:
            state = conn.execute(select(d.version, d.last_ts).where(d.day == day)).one_or_none()
            if state is None or state.last_ts > now - SETTLE_S:
                return False
            rows = self.kpis.rollup_rows(conn, day, now)  # read after the version: they are at least that new
            conn.execute(delete(db.rollup).where(db.rollup.c.day == day))
            if rows:  # one executemany: every row with every value column
                empty = {f"v{i}": None for i in range(db.ROLLUP_VALUES)}
                conn.execute(insert(db.rollup), [{**empty, **r} for r in rows])
            conn.execute(update(db.rollup_days).where(d.day == day)
                         .values(rolled_version=state.version, rolled_at=now,
                                 valid_until=self.kpis.next_change(conn, day, now)))
        return True

    def roll_due(self, now: float | None = None, limit: int | None = DAYS_PER_ROUND) -> int:
        now = time.time() if now is None else now
        self.refresh_stats(now)
        return sum(self.roll_day(day, now) for day in self.due(now)[:limit])

    async def run_forever(self) -> None:
        while not stopping():
            try:
                rolled = await asyncio.to_thread(self.roll_due)
                if rolled:
                    logger.info("analytics rollup: %d day(s) rolled up", rolled)
            except asyncio.CancelledError:
                raise
            except SQLAlchemyError as exc:  # e.g. another gateway rolled the same day at the same moment
                metrics.error("analytics", "database")
                logger.warning("analytics rollup: %s; trying again next round", exc)
            except Exception:  # noqa: BLE001 - the record must never stop the gateway; logged with the trace
                metrics.error("analytics", "failed")
                logger.exception("analytics rollup failed; trying again next round")
            await asyncio.sleep(ROLL_EVERY_S)


def stats(engine: Engine) -> dict[str, Any]:
    """Days with data, rolled up and up to date (for the benchmark and operators)."""
    d = db.rollup_days.c
    with engine.connect() as conn:
        rows = conn.execute(select(d.rolled_version, d.version)).all()
    return {"days": len(rows), "rolled": sum(1 for r in rows if r.rolled_version == r.version)}
