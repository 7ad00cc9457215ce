"""The drill-downs behind the dashboard's KPI tiles that had none (first-contact resolution, CSAT of agents and of the
bot) and the seed reports' targets the summary carries, on the seeded set of tests/analytics/seed.py.

Hand computation (range 2026-11-23..24): identified conversations A, B, C (D has no customer ref). A's browser came
back 1 h later (C): A is not resolved at first contact; B and C had no follow-up within 7 days. The only rating is
B's 5 stars after its handoff was closed (agents); no conversation was rated with the bot alone."""
from __future__ import annotations

import pytest

from analytics.kpis import TARGETS
from tests.analytics.seed import END, START, seed

pytestmark = pytest.mark.asyncio


async def _ids(dashboard, headers, **params) -> list[str]:
    r = await dashboard.http.get("/api/analytics/conversations", params={"start": START, "end": END, **params},
                                 headers=headers)
    assert r.status_code == 200, r.text
    return [row["conversation_id"] for row in r.json()["rows"]]


async def test_tile_drilldowns_list_the_conversations_behind_the_number(dashboard) -> None:
    await seed(dashboard.redis)
    await dashboard.consumer.poll_once(rescan=True)
    boss = await dashboard.login("boss")
    r = await dashboard.http.get("/api/analytics/summary", params={"start": START, "end": END}, headers=boss)
    s = r.json()
    assert s["first_contact_resolution"] == {"identified": 3, "resolved": 2, "rate": 0.6667}
    # The drill-downs list exactly the conversations the summary counted.
    assert await _ids(dashboard, boss, segment="first_contact") == ["conv-b", "conv-c"]
    assert await _ids(dashboard, boss, segment="came_back") == ["conv-a"]
    assert await _ids(dashboard, boss, segment="csat_agents") == ["conv-b"]
    assert await _ids(dashboard, boss, segment="csat_bot") == []
    # Filters apply: Chinese only is B (resolved at first contact); Telegram only is D (not identified).
    assert await _ids(dashboard, boss, segment="first_contact", language="zh") == ["conv-b"]
    assert await _ids(dashboard, boss, segment="came_back", channel="telegram") == []
    # The targets the page colours the tiles with.
    assert s["targets"] == TARGETS == {"bot_resolution": {"min": 0.6}, "first_contact_resolution": {"min": 0.72},
                                       "kb_coverage": {"min": 0.9}, "csat": {"min": 4.5},
                                       "sla_breach_rate": {"max": 0.2}, "agent_load": {"min": 0.7, "max": 0.8}}
    # An unknown segment is refused, and an agent gets none of it.
    r = await dashboard.http.get("/api/analytics/conversations", params={"segment": "everything"}, headers=boss)
    assert r.status_code == 422
    clerk = await dashboard.login("clerk", role="agent")
    r = await dashboard.http.get("/api/analytics/conversations", params={"start": START, "end": END,
                                                                        "segment": "first_contact"}, headers=clerk)
    assert r.status_code == 403 and "conv-" not in r.text
