"""Routing of the queue to people (issue 17, item 4): skills, languages and VIP priority.

The queue is ordered by effective priority - a Gold/Platinum customer (``membership.priority_tiers``) or a very
frustrated one is one step up (:meth:`HandoffService.effective_priority`) - then by waiting time. For one agent the
queue is shown with the handoffs that match their languages and skills (:meth:`Agent.matches`; an empty list means
all) first, each flagged, and "take next" (:func:`take_next`) claims the first matching one, so a VIP who speaks the
agent's language is served before anyone else that agent can help. Supervisors match everything. A person may still
open and claim any queued conversation by hand (a judgement the desk leaves to people).
"""
from __future__ import annotations

from typing import Any

from handoff.agents import Agent
from handoff.handoffs import DeskError, HandoffService

TAKE_ATTEMPTS = 5  # a colleague may claim the same one first: try the next


def for_agent(agent: Agent, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The queue as this agent should work it: matching handoffs first (priority, then waiting order kept)."""
    flagged = [{**row, "match": agent.is_supervisor or agent.matches(row)} for row in rows]
    return [r for r in flagged if r["match"]] + [r for r in flagged if not r["match"]]


async def take_next(desk: HandoffService, agent: Agent) -> dict[str, str] | None:
    """Claim the first queued handoff that matches the agent (None: nothing waiting for them)."""
    tried = 0
    for row in for_agent(agent, await desk.queue()):
        if not row["match"] or tried >= TAKE_ATTEMPTS:
            break
        if row.get("supervisor_only") and not agent.is_supervisor:
            continue
        tried += 1
        try:
            return await desk.claim(agent, row["handoff_id"])
        except DeskError as exc:
            if exc.status == 409 and "no longer waiting" in exc.detail:
                continue  # a colleague was faster
            raise
    return None
