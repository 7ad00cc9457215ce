"""Agent occupancy and load need presence over time, which no stream records: a desk member's presence is a score in
a Redis sorted set that each request refreshes (handoff/agents.py). Every gateway therefore samples it once a
minute, on the minute: one row per desk member online and minute (``analytics_agent_minutes``) with the
conversations they owned then and their limit. The row's key is (agent, minute), so N gateways sampling the same
minute write it once; a minute no gateway was up for is simply not counted (neither online nor busy).

Definitions (docs/KPIS.md): online minutes = sampled minutes; busy minutes = those with at least one owned
conversation; occupancy = busy / online; load = average of owned / limit over the online minutes.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import Engine

from analytics import db
from analytics.live import desk_members_online
from conversations import metrics
from conversations.redis_client import stopping

logger = logging.getLogger(__name__)
MINUTE = 60


class PresenceSampler:
    def __init__(self, agents: Any, engine: Engine, tz: Any) -> None:
        self.agents = agents
        self.engine = engine
        self.tz = tz

    async def sample_once(self, now: float | None = None) -> int:
        """Record the current minute for everyone online now. Returns the rows inserted (0 when another gateway
        already sampled this minute)."""
        now = time.time() if now is None else now
        minute = int(now // MINUTE) * MINUTE
        local = datetime.fromtimestamp(minute, timezone.utc).astimezone(self.tz)
        rows = [{"agent_id": a["agent_id"], "minute_ts": minute, "day": local.strftime("%Y-%m-%d"),
                 "hour": local.hour, "owned": a["owned"], "max_concurrent": a["limit"]}
                for a in await desk_members_online(self.agents)]
        return await asyncio.to_thread(db.write_minutes, self.engine, rows) if rows else 0

    async def run_forever(self) -> None:
        """Sample now (the minute this gateway started in), then a second into each following minute."""
        while not stopping():
            try:
                await self.sample_once()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                metrics.error("analytics", "redis")
                logger.warning("presence sampler: %s", exc)
            except Exception:  # noqa: BLE001 - the record must never stop the gateway; logged with the trace
                metrics.error("analytics", "failed")
                logger.exception("presence sampler failed; sampling again next minute")
            await asyncio.sleep(MINUTE - time.time() % MINUTE + 1)
