"""Supervisors' dashboard API: one JSON endpoint per KPI table, the drill-down and a CSV export of each table.
Same login as the agent console (handoff/deps.py: current_supervisor, cookie or bearer token). Every table and export
queries the record, so each counts against the account's HANDOFF_LIMIT_REPORT_READS (429 + Retry-After); the live
board reads Redis only and is not counted (the page polls it every 5 s)."""
from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from analytics.kpis import Filters, Kpis
from analytics.live import board
from handoff.deps import SupervisorDep, count_report_read

router = APIRouter(prefix="/api/analytics", tags=["analytics"])
DAY = r"^\d{4}-\d{2}-\d{2}$"
MAX_DAYS = 3 * 366
SEGMENTS = ("all", "bot_resolved", "handed_off", "repeat", "bot_sla_breach", "human_sla_breach", "csat_low",
            "csat_agents", "csat_bot", "first_contact", "came_back", "complaint_late_24h", "complaint_escalated_48h")
TABLES = ("summary", "daily", "reasons", "heatmap", "agents", "tiers", "conversations", "questions", "sources",
          "topics", "scores", "complaint_types")
TOP_TOPICS = 10  # unanswered topics: the most frequent groups of the editors' inbox in the period


def get_kpis(request: Request) -> Kpis:
    kpis = getattr(request.app.state, "analytics_kpis", None)
    if kpis is None:
        raise HTTPException(503, "The analytics database is not available.")
    return kpis


def filters(request: Request, start: Annotated[str | None, Query(pattern=DAY)] = None,
            end: Annotated[str | None, Query(pattern=DAY)] = None,
            channel: Annotated[str | None, Query(max_length=32)] = None,
            language: Annotated[str | None, Query(pattern="^(zh|en)$")] = None) -> Filters:
    """Date range in China-time days (inclusive; default the last 7 days), channel and language."""
    desk = getattr(request.app.state, "desk", None)
    today = (datetime.now(desk.policy.tz) if desk else datetime.now()).date()
    try:
        d1 = datetime.strptime(end, "%Y-%m-%d").date() if end else today
        d0 = datetime.strptime(start, "%Y-%m-%d").date() if start else d1 - timedelta(days=6)
    except ValueError as exc:
        raise HTTPException(422, f"Invalid date: {exc}") from exc
    if d0 > d1:
        raise HTTPException(422, "start is after end")
    if (d1 - d0).days > MAX_DAYS:
        raise HTTPException(422, f"The range may span at most {MAX_DAYS} days.")
    return Filters(d0.isoformat(), d1.isoformat(), channel or None, language or None)


KpisDep = Annotated[Kpis, Depends(get_kpis)]
FiltersDep = Annotated[Filters, Depends(filters)]


def _range(f: Filters) -> dict[str, Any]:
    return {"start": f.start, "end": f.end, "channel": f.channel, "language": f.language, "timezone": "Asia/Shanghai"}


async def _table(request: Request, kpis: Kpis, f: Filters, table: str,
                 drill: dict[str, Any]) -> list[dict[str, Any]] | dict[str, Any]:
    if table == "conversations":
        return await asyncio.to_thread(kpis.conversations, f, **drill)
    if table == "topics":
        return await _topics(request, f)
    return await asyncio.to_thread(getattr(kpis, table), f)


async def _topics(request: Request, f: Filters) -> list[dict[str, Any]]:
    """Unanswered topics: what the bot got wrong in the period (NLU fallbacks, no knowledge answer, "did you mean"
    picks, "did not help", repeated failures, agents' corrections), grouped by meaning as the editors' inbox groups
    them (the workbench provides ``app.state.unanswered_topics``; texts masked there), most frequent first, in the
    period, language and channel (each inbox row keeps its conversation's channel)."""
    provider = getattr(request.app.state, "unanswered_topics", None)
    desk = getattr(request.app.state, "desk", None)
    if provider is None or desk is None:
        return []
    day0 = datetime.strptime(f.start, "%Y-%m-%d").replace(tzinfo=desk.policy.tz)
    day1 = datetime.strptime(f.end, "%Y-%m-%d").replace(tzinfo=desk.policy.tz) + timedelta(days=1)
    try:
        groups = await provider(since=day0.timestamp(), until=day1.timestamp(), language=f.language,
                                channel=f.channel, limit=TOP_TOPICS)
    except HTTPException:  # the workbench database is down: the rest of the dashboard still loads
        return []
    return [{"topic": g["text"], "language": g["language"], "count": g["count"],
             "sources": ", ".join(f"{k} {v}" for k, v in sorted(g["sources"].items(), key=lambda kv: -kv[1])),
             "examples": " | ".join(m["text"] for m in g["messages"][1:4])} for g in groups]


def _drill(segment: str = Query("all", pattern="^(" + "|".join(SEGMENTS) + ")$"),
           reason: Annotated[str | None, Query(max_length=40)] = None,
           day: Annotated[str | None, Query(pattern=DAY)] = None,
           hour: Annotated[int | None, Query(ge=0, le=23)] = None,
           dow: Annotated[int | None, Query(ge=0, le=6)] = None,
           agent: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
    return {"segment": segment, "reason": reason, "day": day, "hour": hour, "dow": dow, "agent": agent}


DrillDep = Annotated[dict[str, Any], Depends(_drill)]


@router.get("/summary", dependencies=[Depends(count_report_read)])
async def summary(_: SupervisorDep, request: Request, kpis: KpisDep, f: FiltersDep) -> dict[str, Any]:
    return {"range": _range(f), **await _table(request, kpis, f, "summary", {})}  # type: ignore[dict-item]


@router.get("/live")
async def live(_: SupervisorDep, request: Request) -> dict[str, Any]:
    """The live queue and SLA board (analytics/live.py): the desk's state now, not the record."""
    return await board(request.app)


@router.get("/{table}", dependencies=[Depends(count_report_read)])
async def table(table: str, _: SupervisorDep, request: Request, kpis: KpisDep, f: FiltersDep,
                drill: DrillDep) -> dict[str, Any]:
    if table not in TABLES or table == "summary":
        raise HTTPException(404, "Unknown table.")
    rows = await _table(request, kpis, f, table, drill)
    return {"range": _range(f), "rows": rows, "no_data": not rows}


@router.get("/export/{table}.csv", dependencies=[Depends(count_report_read)])
async def export(table: str, _: SupervisorDep, request: Request, kpis: KpisDep, f: FiltersDep,
                 drill: DrillDep) -> Response:
    if table not in TABLES:
        raise HTTPException(404, "Unknown table.")
    data = await _table(request, kpis, f, table, drill)
    rows = [_flatten(data)] if isinstance(data, dict) else data
    out = io.StringIO()
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    writer = csv.DictWriter(out, fieldnames=columns or ["no_data"])
    writer.writeheader()
    writer.writerows(rows)
    name = f"{table}_{f.start}_{f.end}.csv"
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",  # BOM: Excel reads UTF-8
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in value.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
