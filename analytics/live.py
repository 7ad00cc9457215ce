"""The live queue and SLA board of the dashboard (``GET /api/analytics/live``): read from the desk's Redis state at
the moment it is asked (not from the SQL record, which is history), refreshed by the page every few seconds.

* waiting now: queued handoffs by effective priority (1 = most urgent) and VIP (a priority membership tier of
  data/store_policy.yml), the oldest wait overall and of VIP customers;
* agents online (presence within HANDOFF_PRESENCE_TTL_S; desk members only): conversations owned / their limit;
* breaches now: queued handoffs waiting longer than the pickup SLA (HANDOFF_SLA_PICKUP_S), open complaints with no
  agent answer after 24 h and after 48 h (handoff/complaints.py), open desk alerts.
"""
from __future__ import annotations

from typing import Any

from handoff.complaints import ANSWER_S, ESCALATE_S, ComplaintSla


async def desk_members_online(agents: Any) -> list[dict[str, Any]]:
    """Agents and supervisors online now (presence within HANDOFF_PRESENCE_TTL_S) with the conversations they own
    and their limit (the board's agent rows; the presence sampler's minutes)."""
    online = []
    for agent_id in await agents.online_ids():
        account = await agents.get(agent_id)
        if account is None or not account.works_desk:
            continue
        owned = await agents.active_count(agent_id)
        online.append({"agent_id": account.id, "name": account.display_name, "owned": owned,
                       "limit": account.max_concurrent,
                       "load": round(owned / account.max_concurrent, 4) if account.max_concurrent else None})
    return online


async def board(app: Any) -> dict[str, Any]:
    desk, agents = app.state.desk, app.state.agents
    now = desk.clock.timestamp()
    queue = await desk.queue()
    by_priority = {str(p): 0 for p in range(1, 5)}
    vip = [row for row in queue if desk.policy.is_priority_tier(row.get("tier"))]
    for row in queue:
        key = str(row["effective_priority"])
        by_priority[key] = by_priority.get(key, 0) + 1
    online = await desk_members_online(agents)
    online.sort(key=lambda a: (-(a["load"] or 0), a["name"]))
    sla: ComplaintSla = getattr(app.state, "complaint_sla", None) or ComplaintSla(app.state.redis, desk)
    complaints = await sla.unanswered()
    capacity = sum(a["limit"] for a in online)
    return {
        "at": now,
        "in_service_hours": desk.policy.in_service_hours(desk.clock.now()),
        "waiting": {"total": len(queue), "by_priority": by_priority, "vip": len(vip),
                    "oldest_wait_s": max((r["wait_s"] for r in queue), default=None),
                    "oldest_vip_wait_s": max((r["wait_s"] for r in vip), default=None)},
        "agents": {"online": len(online), "owned": sum(a["owned"] for a in online), "capacity": capacity,
                   "load": round(sum(a["owned"] for a in online) / capacity, 4) if capacity else None,
                   "rows": online},
        "breaches": {"pickup_sla_s": desk.sla_pickup_s,
                     "pickup": sum(1 for r in queue if r["wait_s"] >= desk.sla_pickup_s),
                     "complaints_24h": sum(1 for c in complaints if now - c >= ANSWER_S),
                     "complaints_48h": sum(1 for c in complaints if now - c >= ESCALATE_S),
                     "alerts_open": len(await desk.alerts())},
    }
