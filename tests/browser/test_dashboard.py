"""The managers' dashboard (/dashboard, analytics/static/dashboard) in headless Chromium against the real stack.

The seeded conversations of tests/analytics/seed.py (hand-computed KPIs in docs/KPIS.md, China-time days
2026-11-23..24) are written into the real streams of a separate Redis database and read by the real analytics
consumer into the stack's own analytics record, the one its gateway serves. A supervisor logs in (the agent console's
session), sees the seeded figures, filters by channel and language, the charts are drawn with the data, a number
opens the conversations behind it and tables download as CSV; an agent and an anonymous visitor get no data.
Set WEBCHAT_SCREENSHOT_DIR=docs/screenshots to refresh docs/screenshots/dashboard.png.
"""
from __future__ import annotations

import asyncio
import csv
import io
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from redis.asyncio import Redis

from analytics.consumer import AnalyticsConsumer
from analytics.db import make_engine
from analytics.wiring import STATIC
from conversations import keys
from conversations.settings import GatewaySettings
from handoff.policy import DeskPolicy
from tests.analytics.seed import END, START, T0, seed, seed_presence
from tests.browser.test_agent_console import LAPTOP, ROOT, TIMEOUT_MS, _screenshot, chromium  # noqa: F401
from tests.processes import create_accounts

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
PASSWORD = "dashboard-browser-test-pw"  # noqa: S105 - throw-away accounts in a throw-away Redis
SEED_DB = 7  # a Redis database of the stack's server that its gateway does not read
HOSTILE = "<img src=x onerror=window.__xss=1>"  # an agent id and a reason code that must stay text
HOSTILE_DAY = "2026-11-25"  # outside the seeded range, so the documented figures are unchanged


def _run_async(coro: Any) -> Any:
    """Run a coroutine to completion in its own thread (Playwright's sync API owns this thread's loop)."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(120)
    if "error" in box:
        raise box["error"]
    return box.get("value")


async def _seed_record(redis_url: str, database_url: str) -> int:
    redis = Redis.from_url(redis_url)
    try:
        await redis.flushdb()
        await seed(redis)
        await _seed_hostile(redis)
        engine = make_engine(database_url)
        policy = DeskPolicy.load(GatewaySettings().handoff_policy_path)
        consumer = AnalyticsConsumer(redis, engine, policy, "dashboard-browser-test", claim_idle_s=0.0)
        inserted = 0
        for _ in range(5):  # the desk stream first, then the conversation streams it found
            inserted += await consumer.poll_once(rescan=True)
        seed_presence(engine)
        engine.dispose()
        await redis.flushdb()
        return inserted
    finally:
        await redis.aclose()


async def _seed_hostile(redis: Redis) -> None:
    """One more conversation on HOSTILE_DAY whose handoff record carries markup (the desk stream's ids must grow:
    these come after the seed's last desk event)."""
    t0 = T0 + 2 * 86400
    await redis.hset(keys.conversation("conv-x"), mapping={"channel": "webchat", "ui_lang": "en", "device": "d-x",
                                                           "created_at": t0})
    for seconds, role, text in ((0, "customer", "<script>window.__xss=1</script> where is my parcel"),
                                (1, "bot", "On its way."), (30, "agent", "<b>hi</b>")):
        fields = {"role": role, "text": text, "buttons": "[]", "ts": repr(t0 + seconds)}
        if role == "agent":
            fields["author"] = HOSTILE
        await redis.xadd(keys.messages("conv-x"), fields, id=f"{int((t0 + seconds) * 1000)}-0")
    await redis.hset(keys.handoff("h-x"), mapping={
        "id": "h-x", "conversation_id": "conv-x", "reason_code": HOSTILE[:40], "priority": 2, "tier": "regular",
        "language": "en", "channel": "webchat", "customer_id": "", "agent_id": HOSTILE, "resolution": "resolved"})
    for seconds, kind in ((10, "queued"), (20, "claimed"), (60, "closed")):
        await redis.xadd(keys.desk_events(), {"type": kind, "handoff_id": "h-x", "conversation_id": "conv-x"},
                         id=f"{int((t0 + seconds) * 1000)}-0")


@pytest.fixture(scope="module")
def seeded(stack: Any) -> None:
    env = stack.env()
    redis_url = env["REDIS_URL"].rsplit("/", 1)[0] + f"/{SEED_DB}"
    _run_async(_seed_record(redis_url, env["ANALYTICS_DATABASE_URL"]))


@pytest.fixture(scope="module")
def accounts(stack: Any) -> dict:
    stamp = int(time.time())
    names = {"supervisor": f"boss{stamp}", "agent": f"clerk{stamp}"}
    return create_accounts(stack, names, PASSWORD)


def _log_in(page: Page, stack: Any, username: str) -> None:
    page.goto(f"{stack.web_url}/dashboard#start={START}&end={END}")
    page.locator("#login-username").fill(username)
    page.locator("#login-password").fill(PASSWORD)
    page.locator("#login-form button[type=submit]").click()


def _tile(page: Page, kpi: str) -> Any:
    return page.locator(f'.tile[data-kpi="{kpi}"] .tile__value')


def _chart_data(page: Page, canvas_id: str) -> dict:
    """The data the Chart.js instance on this canvas holds and how many of its pixels are painted."""
    return page.evaluate("""(id) => {
      const canvas = document.getElementById(id);
      const chart = window.Chart && window.Chart.getChart(canvas);
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let painted = 0;
      for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) painted += 1; }
      return {labels: chart ? chart.data.labels : null,
              data: chart ? chart.data.datasets.map((d) => d.data) : null, painted};
    }""", canvas_id)


def _download(page: Page, link: Any) -> list[dict]:
    with page.expect_download() as info:
        link.click()
    text = Path(info.value.path()).read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_supervisor_reads_filters_drills_down_and_exports(stack: Any, chromium: Browser,  # noqa: F811
                                                          seeded: None, accounts: dict) -> None:
    assert (STATIC / "vendor" / "chart.umd.min.js").exists(), "Chart.js is not vendored: run scripts/setup.sh"
    expect.set_options(timeout=TIMEOUT_MS)
    errors: list[str] = []
    context = chromium.new_context(viewport={"width": 1366, "height": 1400}, locale="en-US", accept_downloads=True)
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # Console errors (CSP violations among them), but not the 401 of the first visit before logging in.
        page.on("console", lambda msg: errors.append(msg.text)
                if msg.type == "error" and "status of 401" not in msg.text else None)
        _log_in(page, stack, accounts["supervisor"])
        expect(page.locator("#dash-view")).to_be_visible()
        # The seeded figures (docs/KPIS.md "Seeded values").
        expect(_tile(page, "conversations")).to_have_text("4")
        expect(_tile(page, "deflection")).to_have_text("25%")
        expect(_tile(page, "handoff")).to_have_text("75%")
        expect(_tile(page, "frt_bot")).to_have_text("6.8 s")
        expect(_tile(page, "frt_human")).to_have_text("15 s")
        expect(_tile(page, "csat")).to_have_text("5 ★")
        expect(page.locator('.tile[data-kpi="csat"] .tile__sub')).to_contain_text("bot: no data")
        expect(_tile(page, "sla")).to_have_text("1 / 2")
        expect(_tile(page, "repeat")).to_have_text("33.3%")
        expect(page.locator("#agents-table tbody tr")).to_have_count(2)
        expect(page.locator("#agents-table tbody tr").first).to_contain_text("a1")
        # Presence minutes (tests/analytics/seed.py PRESENCE): a1 online 8 min, occupancy 75 %, load 25 %; the desk's
        # load 22.2 % against the seed reports' 70-80 % band.
        a1_cells = page.locator("#agents-table tbody tr").first.locator("td")
        expect(a1_cells.nth(7)).to_have_text("8 min")
        expect(a1_cells.nth(8)).to_have_text("75%")
        expect(a1_cells.nth(9)).to_have_text("25%")
        expect(_tile(page, "agent_load")).to_have_text("22.2%")
        expect(page.locator('.tile[data-kpi="agent_load"] .tile__sub')).to_have_text("occupancy 66.7% · 0.2 h online")
        expect(page.locator('.tile[data-kpi="agent_load"] .tile__target')).to_have_text("target 70%–80% · not met")
        expect(page.locator("#heatmap button[data-drill='slot-0-10']")).to_have_text("2")  # Monday 10:00 China time
        # VIP queue times: the Gold customer's handoff first (waited 10 s, first reply 20 s: over 15 s).
        tiers = page.locator("#tiers-table tbody tr")
        expect(tiers).to_have_count(2)
        expect(tiers.first.locator("td")).to_have_text(["gold (VIP)", "1", "10 s", "10 s", "20 s", "1 (100%)"])
        expect(tiers.nth(1).locator("td").first).to_have_text("regular")
        # The score distribution: B's one rating, 5 stars for the agent; no complaint handoff in this seed.
        scores = page.locator("#scores-table tbody tr")
        expect(scores).to_have_count(5)
        expect(scores.nth(4).locator("td")).to_have_text(["★★★★★", "0", "1 (100%)"])
        expect(page.locator("#ctypes-table tbody")).to_contain_text("No data for this period.")
        # Unanswered topics come from the stack's workbench inbox, which has nothing from the seeded days.
        expect(page.locator("#topics-table tbody")).to_contain_text("No data for this period.")
        expect(page.locator('a.csv[data-table="topics"]')).to_be_visible()

        daily = _chart_data(page, "chart-daily")
        assert daily["labels"] == ["2026-11-23", "2026-11-24"]
        assert daily["data"][:2] == [[1, 0], [2, 1]]  # bot-resolved, handed off per day
        assert daily["painted"] > 1000
        reasons = _chart_data(page, "chart-reasons")
        assert reasons["labels"] == ["explicit_request", "high_frustration"] and reasons["data"] == [[2, 1]]
        assert reasons["painted"] > 500
        _screenshot(page, "dashboard.png")

        # Drill-down: the conversations behind the handoff rate, then behind one reason, and their CSV.
        page.locator('button[data-drill="handoff"]').click()
        expect(page.locator("#drill")).to_be_visible()
        expect(page.locator("#drill-table tbody tr")).to_have_count(3)
        page.locator('button[data-drill="reason-explicit_request"]').click()
        expect(page.locator("#drill-title")).to_contain_text("reason explicit_request")
        expect(page.locator("#drill-table tbody tr")).to_have_count(2)
        expect(page.locator("#drill-table tbody")).to_contain_text("conv-c")
        expect(page.locator("#drill-table tbody")).to_contain_text("conv-d")
        rows = _download(page, page.locator("#drill-csv"))
        assert sorted(r["conversation_id"] for r in rows) == ["conv-c", "conv-d"]
        assert {r["reason"] for r in rows} == {"explicit_request"}
        agents = _download(page, page.locator('a.csv[data-table="agents"]'))
        assert [(r["agent_id"], r["handoffs"]) for r in agents] == [("a1", "1"), ("a2", "1")]
        tier_rows = _download(page, page.locator('a.csv[data-table="tiers"]'))
        assert [(r["tier"], r["vip"], r["queue_wait_avg_s"]) for r in tier_rows] == [("gold", "True", "10.0"),
                                                                                    ("regular", "False", "5.0")]

        # A filter: the Telegram conversation only; the charts follow.
        page.locator("#f-channel").select_option("telegram")
        page.locator("#filters button[type=submit]").click()
        expect(_tile(page, "conversations")).to_have_text("1")
        expect(_tile(page, "deflection")).to_have_text("0%")
        expect(_tile(page, "handoff")).to_have_text("100%")
        assert _chart_data(page, "chart-daily")["data"][:2] == [[0, 0], [0, 1]]
        assert "channel=telegram" in page.url
        # The open drill-down follows the filter too.
        expect(page.locator("#drill-table tbody tr")).to_have_count(1)
        expect(page.locator("#drill-table tbody")).to_contain_text("conv-d")

        # Markup in the record (an agent id, a reason code) is shown as text, in the tables and the drill-down.
        page.locator("#f-channel").select_option("")
        page.locator("#f-start").fill(HOSTILE_DAY)
        page.locator("#f-end").fill(HOSTILE_DAY)
        page.locator("#filters button[type=submit]").click()
        expect(_tile(page, "conversations")).to_have_text("1")
        expect(page.locator("#agents-table tbody td").first).to_have_text(HOSTILE)
        expect(page.locator("#reasons-table tbody td").first).to_have_text(HOSTILE[:40])
        page.locator("#agents-table tbody button.num").click()
        expect(page.locator("#drill-table tbody tr")).to_have_count(1)
        expect(page.locator("#drill-table tbody")).to_contain_text(HOSTILE)
        expect(page.locator("main img, main script, main b")).to_have_count(0)
        assert page.evaluate("() => window.__xss") is None

        # Chinese, and an empty period says "no data" rather than 0 % or an error.
        page.locator("#ui-lang").select_option("zh")
        expect(page.locator('.tile[data-kpi="deflection"] .tile__label')).to_have_text("机器人解决率")
        page.locator("#f-channel").select_option("")
        page.locator("#f-start").fill("2020-01-01")
        page.locator("#f-end").fill("2020-01-02")
        page.locator("#filters button[type=submit]").click()
        expect(_tile(page, "conversations")).to_have_text("0")
        for kpi in ("deflection", "handoff", "frt_bot", "frt_human", "csat", "sla", "repeat", "resolution"):
            expect(_tile(page, kpi)).to_have_text("暂无数据")
        expect(page.locator("#agents-table tbody")).to_contain_text("该时间段暂无数据")
        expect(page.locator("#tiers-table tbody")).to_contain_text("该时间段暂无数据")
        expect(page.locator("#tiers-title")).to_have_text("各会员等级排队时长")
        expect(page.locator("#topics-title")).to_have_text("未解决的问题")
        assert errors == []
    finally:
        context.close()


def test_non_supervisors_get_no_data(stack: Any, chromium: Browser, seeded: None,  # noqa: F811
                                     accounts: dict) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    http = httpx.Client(base_url=stack.web_url, timeout=30)
    query = {"start": START, "end": END}
    assert http.get("/api/analytics/summary", params=query).status_code == 401
    assert http.get("/api/analytics/export/conversations.csv", params=query).status_code == 401
    login = http.post("/api/agent/login", json={"username": accounts["agent"], "password": PASSWORD})
    assert login.status_code == 200
    bearer = {"Authorization": f"Bearer {login.json()['token']}"}
    for path in ("/api/analytics/summary", "/api/analytics/conversations", "/api/analytics/export/agents.csv"):
        r = http.get(path, params=query, headers=bearer)
        assert r.status_code == 403, (path, r.text)
        assert "conv-" not in r.text
    http.close()

    context = chromium.new_context(viewport=LAPTOP, locale="en-US")
    try:
        page = context.new_page()
        _log_in(page, stack, accounts["agent"])
        expect(page.locator("#forbidden-view")).to_be_visible()
        expect(page.locator("#forbidden")).to_have_text("Supervisors only.")
        expect(page.locator("#dash-view")).to_be_hidden()
        expect(page.locator(".tile")).to_have_count(0)
    finally:
        context.close()


def test_live_queue_board_follows_the_desk(stack: Any, chromium: Browser, accounts: dict) -> None:  # noqa: F811
    """The live queue and SLA board refreshes by itself: a handoff queued while the page is open shows up in
    'Waiting now' and in its priority row without a reload."""
    expect.set_options(timeout=TIMEOUT_MS)
    env = stack.env()
    http = httpx.Client(base_url=stack.web_url, timeout=60)
    context = chromium.new_context(viewport={"width": 1366, "height": 1400}, locale="en-US")
    try:
        page = context.new_page()
        _log_in(page, stack, accounts["supervisor"])
        tile = page.locator('#live-tiles .tile[data-live="waiting"] .tile__value')
        expect(tile).to_have_text(re.compile(r"^\d+$"))
        before = int(tile.inner_text())
        p2 = page.locator('#live-priority tr[data-priority="2"] td').nth(1)
        p2_before = int(p2.inner_text())
        r = http.post("/api/webchat/messages", json={"conversation_id": None, "message_id": uuid.uuid4().hex,
                                                     "text": "hello", "metadata": {"ui_lang": "en"}})
        assert r.status_code == 200, r.text
        r = http.post("/internal/handoffs", headers={"X-Internal-Token": env["HANDOFF_INTERNAL_TOKEN"]}, json={
            "conversation_id": r.json()["conversation_id"], "channel": "webchat", "reason_code": "explicit_request",
            "priority": 2, "language": "en", "customer": {"id": None, "tier": "regular", "verified": False},
            "frustration": {"score": 10, "curve": []}, "signals": {}, "summary": None})
        assert r.status_code in (200, 201), r.text
        expect(tile).to_have_text(str(before + 1), timeout=15_000)  # the 5-second refresh, no reload
        expect(p2).to_have_text(str(p2_before + 1))
        expect(page.locator('#live-tiles .tile[data-live="agents"] .tile__value')).not_to_be_empty()
        page.locator("#ui-lang").select_option("zh")
        expect(page.locator("#live-title")).to_have_text("实时排队与 SLA")
    finally:
        context.close()
        http.close()
