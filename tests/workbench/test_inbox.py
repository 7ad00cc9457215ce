"""The inbox of what the bot got wrong, on the real gateway app (uvicorn, real Redis: tests/handoff/conftest.py's
``desk``), with the workbench on copies of data/kb and data/nlu and its own SQLite file.

Each source is written the way the real writer writes it (the action server's FeedbackStore for the knowledge-base
and fallback streams, the desk's own API for handoffs and agent corrections), taken in by the inbox's consumer group
and read back through ``GET /api/workbench/inbox``; each action (add to intent, add to article, dismiss) is checked
in the files and the versions. Attacks: agents and anonymous callers cannot read or change the inbox, stored texts
are masked, held-out duplicates are refused, the per-account write limit holds."""
from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from actions.kb_feedback import FeedbackStore
from bot.shared.paths import REPO_ROOT
from bot.shared.patterns import find_identifiers
from conversations import keys
from tests.handoff.conftest import desk  # noqa: F401 - the gateway fixture, shared
from tests.processes import serve_in_process
from workbench import db
from workbench.inbox import Embedder, Inbox, InboxConsumer, encode_vector, item
from workbench.masking import mask
from workbench.nlu import EXAMPLE_VALUES, NluProblem, training_line
from workbench.settings import WorkbenchSettings

ACTION_TOKEN = "action-token-for-tests"  # noqa: S105 - test secret
ARTICLE = "shipping-remote-regions"


def _vector(text: str) -> list[float]:
    """A deterministic stand-in for the encoder: texts sharing the word 'bitcoin'/'比特币' point the same way (the real
    encoder's grouping: test_real_encoder_groups_paraphrases_and_separates_topics)."""
    seed = "bitcoin" if ("bitcoin" in text.lower() or "比特币" in text) else text
    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16))
    v = rng.normal(size=16)
    return list(v / np.linalg.norm(v))


@pytest.fixture
async def fake_embedder():
    """Stands in for the action server's ``POST /kb/embed`` (the real one: tests/actions/test_kb_embed.py)."""
    app = FastAPI()
    seen: list[dict[str, Any]] = []

    @app.post("/kb/embed")
    async def embed(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append({"token": request.headers.get("x-action-token"), **body})
        return JSONResponse({"model": "fake", "dim": 16, "vectors": [_vector(t) for t in body["texts"]]})

    server, task, port = await serve_in_process(app)
    yield f"http://127.0.0.1:{port}", seen
    server.should_exit = True
    await task


@pytest.fixture
def copies(tmp_path: Path) -> tuple[Path, Path]:
    kb, nlu = tmp_path / "kb", tmp_path / "nlu"
    shutil.copytree(REPO_ROOT / "data" / "kb", kb)
    shutil.copytree(REPO_ROOT / "data" / "nlu", nlu)
    return kb, nlu


@pytest.fixture
def ib(desk, copies, tmp_path: Path, fake_embedder):  # noqa: F811 - pytest fixture injection
    url, _ = fake_embedder
    kb, nlu = copies
    settings = WorkbenchSettings(database_url=f"sqlite:///{tmp_path / 'workbench.db'}", kb_dir=kb, nlu_dir=nlu,
                                 action_url=url, action_token=ACTION_TOKEN)
    engine = db.make_engine(settings.database_url)
    desk.app.state.workbench_settings = settings
    desk.app.state.workbench_engine = engine
    desk.consumer = InboxConsumer(desk.redis, Inbox(engine, settings), Embedder(settings), "test-1")
    desk.engine = engine
    desk.feedback = FeedbackStore(desk.redis)
    return desk


async def _inbox(ib, who, **params: Any) -> dict[str, Any]:
    await ib.consumer.poll_once()
    r = await ib.http.get("/api/workbench/inbox", headers=who.headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _messages(listing: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for g in listing["groups"] for m in g["messages"]]


# --- sources ---------------------------------------------------------------------------------------------------

async def test_each_knowledge_base_and_nlu_source_reaches_the_inbox(ib) -> None:
    editor = await ib.agent("eddie", "editor")
    await ib.redis.hset(keys.conversation("c-fb"), mapping={"channel": "telegram"})
    await ib.redis.hset(keys.conversation("c-na"), mapping={"channel": "webchat"})
    await ib.feedback.record_fallback("c-fb", "do you sell gift cards for pets", "en", "ask_policy", 0.31, "none")
    await ib.feedback.record_unanswered("c-na", "can I pay with bitcoin", "en", 0.41)
    await ib.feedback.record_choice("c-ch", "parcel to tibet how long", ARTICLE, "en")
    await ib.feedback.record_feedback("c-un", "orders-delivery-time", False, "en", "why is it so slow", time.time())
    await ib.feedback.record_feedback("c-ok", "orders-delivery-time", True, "en", "thanks that helped", time.time())
    listing = await _inbox(ib, editor)
    by_source = {m["source"]: m for m in _messages(listing)}
    assert set(by_source) == {"nlu_fallback", "kb_no_answer", "kb_choice", "unhelpful"}  # "yes, it helped": no
    assert by_source["nlu_fallback"]["intent_guess"] == "ask_policy"
    assert by_source["nlu_fallback"]["detail"] == {"kb_decision": "none", "guess_confidence": 0.31}
    assert by_source["kb_no_answer"]["detail"]["best_score"] == pytest.approx(0.41)
    assert by_source["kb_choice"]["article_id"] == ARTICLE
    assert by_source["unhelpful"]["article_id"] == "orders-delivery-time"
    # Each row keeps its conversation's channel (the dashboard's channel filter); an unknown conversation: none.
    assert [by_source[k]["channel"] for k in ("nlu_fallback", "kb_no_answer", "kb_choice")] == [
        "telegram", "webchat", None]
    assert listing["item_count"] == 4 and listing["embedded"] == 4
    # Taken in once: a second round (and a second gateway's consumer) adds nothing.
    other = InboxConsumer(ib.redis, ib.consumer.inbox, ib.consumer.embedder, "test-2")
    assert await other.poll_once() == 0 and await ib.consumer.poll_once() == 0
    assert (await _inbox(ib, editor))["item_count"] == 4


async def test_a_repeated_failure_handoff_brings_the_customers_last_messages(ib) -> None:
    editor = await ib.agent("eddie", "editor")
    conv = (await ib.say("zorp blam the widget"))["conversation_id"]
    await ib.say("blam zorp still the widget", conv)
    r = await ib.handoff(conv, reason_code="repeated_failure")
    assert r.status_code == 200, r.text
    # another reason brings nothing
    other = (await ib.say("I want a person now"))["conversation_id"]
    assert (await ib.handoff(other, reason_code="explicit_request")).status_code == 200
    messages = _messages(await _inbox(ib, editor))
    assert sorted(m["text"] for m in messages if m["source"] == "repeated_failure") == [
        "blam zorp still the widget", "zorp blam the widget"]
    assert all(m["detail"]["handoff_id"] == r.json()["handoff_id"] for m in messages)


async def test_an_agent_correction_at_hand_back_and_at_close(ib) -> None:
    editor = await ib.agent("eddie", "editor")
    ann = await ib.agent("ann", "agent")
    conv = (await ib.say("my thingy never showed up, order DM2026110512"))["conversation_id"]
    hid = (await ib.handoff(conv)).json()["handoff_id"]
    assert (await ib.http.post(f"/api/agent/handoffs/{hid}/claim", headers=ann.headers)).status_code == 200
    options = (await ib.http.get("/api/agent/corrections/options", headers=ann.headers, params={"lang": "en"})).json()
    assert "order_status" in options["intents"] and ARTICLE in {a["id"] for a in options["articles"]}
    bad = await ib.http.post(f"/api/agent/handoffs/{hid}/handback", headers=ann.headers,
                             json={"correction": {"intent": "no_such_intent"}})
    assert bad.status_code == 422  # refused before anything changed: still hers
    r = await ib.http.post(f"/api/agent/handoffs/{hid}/handback", headers=ann.headers,
                           json={"correction": {"intent": "order_status"}})
    assert r.status_code == 200, r.text
    assert r.json()["correction"]["intent"] == "order_status"
    # at close, an article
    conv2 = (await ib.say("how long to lhasa?"))["conversation_id"]
    hid2 = (await ib.handoff(conv2)).json()["handoff_id"]
    await ib.http.post(f"/api/agent/handoffs/{hid2}/claim", headers=ann.headers)
    r = await ib.http.post(f"/api/agent/handoffs/{hid2}/close", headers=ann.headers,
                           json={"resolution": "resolved", "correction": {"article_id": ARTICLE}})
    assert r.status_code == 200, r.text
    # shown again in the console, audited
    seen = (await ib.http.get(f"/api/agent/handoffs/{hid2}", headers=ann.headers)).json()
    assert seen["handoff"]["handoff_id"] == hid2 and seen["correction"]["article_id"] == ARTICLE
    audit = [e for e in await ib.redis.xrange(keys.audit()) if e[1].get(b"action") == b"correction"]
    assert len(audit) == 2
    corrections = {m["text"]: m for m in _messages(await _inbox(ib, editor)) if m["source"] == "correction"}
    assert corrections["my thingy never showed up, order {order_number}"]["intent"] == "order_status"
    assert corrections["my thingy never showed up, order {order_number}"]["agent_id"] == ann.account.id
    assert corrections["how long to lhasa?"]["article_id"] == ARTICLE
    group = next(g for g in (await _inbox(ib, editor))["groups"] if g["text"] == "how long to lhasa?")
    assert group["suggested_articles"] == [ARTICLE]


# --- grouping and order ----------------------------------------------------------------------------------------

async def test_similar_messages_are_grouped_with_counts_most_frequent_or_newest_first(ib) -> None:
    editor = await ib.agent("eddie", "editor")
    for i, text in enumerate(["can I pay with bitcoin", "do you take bitcoin?", "Bitcoin payment possible"]):
        await ib.feedback.record_unanswered(f"c-b{i}", text, "en", 0.3)
    await ib.feedback.record_unanswered("c-x", "is there a store in Paris", "en", 0.2)  # the newest, alone
    frequent = await _inbox(ib, editor)
    assert [g["count"] for g in frequent["groups"]] == [3, 1]
    assert frequent["groups"][0]["text"] == "Bitcoin payment possible"  # a group shows its newest message
    assert frequent["group_count"] == 2 and frequent["item_count"] == 4
    newest = await _inbox(ib, editor, sort="newest")
    assert [g["count"] for g in newest["groups"]] == [1, 3]
    only = await _inbox(ib, editor, source="kb_no_answer")
    assert only["item_count"] == 4 and (await _inbox(ib, editor, source="correction"))["item_count"] == 0


async def test_without_the_action_server_messages_group_by_their_text_and_get_vectors_later(ib) -> None:
    editor = await ib.agent("eddie", "editor")
    real_url = ib.consumer.embedder.settings.action_url
    ib.consumer.embedder.settings = ib.consumer.embedder.settings.model_copy(update={"action_url": "http://127.0.0.1:9"})
    await ib.feedback.record_unanswered("c1", "Where is store in Paris?", "en", 0.2)
    await ib.feedback.record_unanswered("c2", "where is store in paris", "en", 0.2)
    listing = await _inbox(ib, editor)
    assert listing["embedded"] == 0 and [g["count"] for g in listing["groups"]] == [2]
    ib.consumer.embedder.settings = ib.consumer.embedder.settings.model_copy(update={"action_url": real_url})
    ib.consumer._embed_after = 0.0
    assert (await _inbox(ib, editor))["embedded"] == 2


def test_real_encoder_groups_paraphrases_and_separates_topics(tmp_path: Path) -> None:
    """The knowledge base's own encoder (the action server's /kb/embed code on the built index's model) with the
    default threshold: paraphrases one group, other topics and the other language apart."""
    import asyncio

    from actions.server import kb_embeddings

    texts = {"crypto": ["can I pay with bitcoin", "do you accept bitcoin?", "bitcoin payment possible?"],
             "parcel": ["where is my parcel", "where is my package", "wheres my parcel??"],
             "mars": ["do you ship to mars", "can you deliver to mars"],
             "zh": ["我的快递到哪了", "我的包裹在哪里"]}
    flat = [(topic, t) for topic, ts in texts.items() for t in ts]
    body, status = asyncio.run(kb_embeddings({"texts": [t for _, t in flat]}))
    assert status == 200 and body["dim"] >= 128
    settings = WorkbenchSettings(database_url=f"sqlite:///{tmp_path / 'wb.db'}")
    inbox = Inbox(db.make_engine(settings.database_url), settings)
    rows = []
    for i, ((topic, text), vector) in enumerate(zip(flat, body["vectors"])):
        row = {"ref": f"r{i}", "source": "kb_no_answer", "conversation_id": f"c{i}", "ts": float(i),
               "language": "zh" if topic == "zh" else "en", "text": text, "key": text, "detail": "{}",
               "status": "open", "vector": encode_vector(vector)}
        rows.append(row)
    inbox.insert(rows)
    groups = inbox.groups()["groups"]
    found = sorted(sorted(m["text"] for m in g["messages"]) for g in groups)
    assert found == sorted(sorted(ts) for ts in texts.values())


# --- actions ---------------------------------------------------------------------------------------------------

async def test_add_to_intent_writes_the_rasa_file_versions_it_and_restores(ib, copies) -> None:
    _, nlu = copies
    editor = await ib.agent("eddie", "editor")
    before = (nlu / "en.yml").read_text(encoding="utf-8")
    await ib.feedback.record_fallback("c1", "yo where my stuff at, order DM2026110512", "en", "greet", 0.2, "none")
    await ib.feedback.record_fallback("c2", "yo where my stuff at, order DM2026120303", "en", "greet", 0.2, "none")
    group = (await _inbox(ib, editor))["groups"][0]
    assert group["count"] == 2 and group["text"] == "yo where my stuff at, order {order_number}"
    ids = [m["id"] for m in group["messages"]]
    check = await ib.http.post("/api/workbench/inbox/check", headers=editor.headers,
                               json={"text": group["text"], "intent": "order_status", "language": "en"})
    assert check.status_code == 200 and check.json()["refused"] is False
    line = f"yo where my stuff at, order [{EXAMPLE_VALUES['order_number']}](order_number)"
    assert check.json()["line"] == line
    r = await ib.http.post("/api/workbench/inbox/add-to-intent", headers=editor.headers,
                           json={"item_ids": ids, "text": group["text"], "intent": "order_status", "language": "en"})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["resolved"] == 2
    after = (nlu / "en.yml").read_text(encoding="utf-8")
    # Rasa's format, one line more, in the intent's block; the rest of the file byte for byte the same.
    added = [ln for ln in after.splitlines() if ln not in before.splitlines()]
    assert added == [f"    - {line}"]
    assert after.replace(f"    - {line}\n", "", 1) == before
    data = yaml.safe_load(after)
    block = next(b for b in data["nlu"] if b.get("intent") == "order_status")
    assert f"- {line}" in block["examples"]
    assert (await _inbox(ib, editor))["item_count"] == 0  # handled
    done = await _inbox(ib, editor, status="added")
    assert done["groups"][0]["messages"][0]["resolution"]["intent"] == "order_status"
    versions = (await ib.http.get("/api/workbench/intents/en/order_status/versions", headers=editor.headers)).json()
    assert [(v["version"], v["kind"], v["author"]) for v in versions["versions"]] == [
        (2, "edit", "eddie"), (1, "import", "files")]
    assert f"+- {line}" in versions["versions"][0]["diff"]
    # the same line again: refused (already there), nothing written
    await ib.feedback.record_fallback("c3", "yo where my stuff at, order DM2026010101", "en", None, None, "none")
    ids = [m["id"] for m in _messages(await _inbox(ib, editor))]
    r = await ib.http.post("/api/workbench/inbox/add-to-intent", headers=editor.headers,
                           json={"item_ids": ids, "text": group["text"], "intent": "order_status", "language": "en"})
    assert r.status_code == 422 and r.json()["refusals"][0]["kind"] == "same_intent"
    # restore version 1: the file as it was
    r = await ib.http.post("/api/workbench/intents/en/order_status/restore", headers=editor.headers,
                           json={"version": 1})
    assert r.status_code == 200 and r.json()["version"] == 3
    assert (nlu / "en.yml").read_text(encoding="utf-8") == before


async def test_a_held_out_near_duplicate_is_refused_and_another_intents_is_a_warning(ib, copies) -> None:
    _, nlu = copies
    editor = await ib.agent("eddie", "editor")
    heldout = yaml.safe_load((REPO_ROOT / "tests" / "nlu" / "heldout_en.yml").read_text(encoding="utf-8"))
    block = next(b for b in heldout["nlu"] if b["intent"] == "greet")
    leaked = block["examples"].splitlines()[0].strip()[2:] + "!!"  # a held-out line, lightly disguised
    await ib.feedback.record_fallback("c1", leaked, "en", None, None, "none")
    ids = [m["id"] for m in _messages(await _inbox(ib, editor))]
    before = (nlu / "en.yml").read_text(encoding="utf-8")
    r = await ib.http.post("/api/workbench/inbox/add-to-intent", headers=editor.headers,
                           json={"item_ids": ids, "text": leaked, "intent": "greet", "language": "en"})
    assert r.status_code == 422
    refusal = r.json()["refusals"][0]
    assert refusal["kind"] == "heldout" and refusal["where"].startswith("nlu/heldout_en.yml:")
    assert leaked.rstrip("!") not in r.text  # the held-out text itself is never shown
    assert (nlu / "en.yml").read_text(encoding="utf-8") == before
    # a training line of another intent: allowed, with a warning naming it
    check = await ib.http.post("/api/workbench/inbox/check", headers=editor.headers,
                               json={"text": "good morning!!", "intent": "thank", "language": "en"})
    assert check.status_code == 200
    body = check.json()
    assert body["refused"] is False and body["warnings"][0]["intent"] == "greet"


async def test_add_to_article_goes_through_the_article_save_path(ib, copies) -> None:
    kb, _ = copies
    editor = await ib.agent("eddie", "editor")
    await ib.feedback.record_choice("c1", "parcel to lhasa, how many days", ARTICLE, "en")
    group = (await _inbox(ib, editor))["groups"][0]
    head = (await ib.http.get(f"/api/workbench/articles/{ARTICLE}", headers=editor.headers)).json()
    body = {"item_ids": [group["messages"][0]["id"]], "article_id": ARTICLE, "base_version": head["version"],
            "text": group["text"], "language": "en"}
    r = await ib.http.post("/api/workbench/inbox/add-to-article", headers=editor.headers, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == head["version"] + 1 and r.json()["resolved"] == 1
    assert "- parcel to lhasa, how many days" in (kb / "shipping.yml").read_text(encoding="utf-8")
    # a stale version is the article path's 409, nothing saved
    await ib.feedback.record_choice("c2", "tibet delivery time?", ARTICLE, "en")
    item = next(m for m in _messages(await _inbox(ib, editor)))
    r = await ib.http.post("/api/workbench/inbox/add-to-article", headers=editor.headers,
                           json={**body, "item_ids": [item["id"]], "text": item["text"]})
    assert r.status_code == 409 and r.json()["current"]["version"] == head["version"] + 1
    assert (await _inbox(ib, editor))["item_count"] == 1  # still open


async def test_messages_past_the_retention_are_deleted_by_the_consumer(ib) -> None:
    """Masked or not, customers' words do not stay for ever: the consumer's first round (then hourly) deletes the
    messages older than WORKBENCH_INBOX_RETENTION_S, whatever their status."""
    editor = await ib.agent("eddie", "editor")
    retention = ib.consumer.inbox.settings.inbox_retention_s
    await ib.feedback.record_fallback("c-new", "do you sell gift cards for pets", "en", None, None, "none")
    old = time.time() - retention - 3600
    await ib.feedback.record_feedback("c-old", "orders-delivery-time", False, "en", "why so slow back then", old)
    listing = await _inbox(ib, editor)
    assert [m["text"] for m in _messages(listing)] == ["do you sell gift cards for pets"]
    with ib.engine.connect() as conn:
        assert conn.execute(select(db.inbox.c.conversation_id)).scalars().all() == ["c-new"]


async def test_dismiss(ib) -> None:
    boss = await ib.agent("boss", "supervisor")  # supervisors can do everything editors can
    await ib.feedback.record_unanswered("c1", "asdf qwerty", "en", 0.1)
    ids = [m["id"] for m in _messages(await _inbox(ib, boss))]
    r = await ib.http.post("/api/workbench/inbox/dismiss", headers=boss.headers, json={"item_ids": ids})
    assert r.status_code == 200 and r.json() == {"resolved": 1}
    assert (await _inbox(ib, boss))["item_count"] == 0
    r = await ib.http.post("/api/workbench/inbox/dismiss", headers=boss.headers, json={"item_ids": ids})
    assert r.status_code == 409  # already handled
    r = await ib.http.post("/api/workbench/inbox/dismiss", headers=boss.headers, json={"item_ids": [99999]})
    assert r.status_code == 404


# --- attacks ---------------------------------------------------------------------------------------------------

async def test_agents_and_anonymous_callers_cannot_read_or_change_the_inbox(ib) -> None:
    await ib.feedback.record_unanswered("c1", "secret question", "en", 0.1)
    await ib.consumer.poll_once()
    ann = await ib.agent("ann", "agent")
    calls = [("GET", "/api/workbench/inbox", None), ("GET", "/api/workbench/intents", None),
             ("POST", "/api/workbench/inbox/dismiss", {"item_ids": [1]}),
             ("POST", "/api/workbench/inbox/check", {"text": "x", "intent": "greet", "language": "en"}),
             ("POST", "/api/workbench/inbox/add-to-intent",
              {"item_ids": [1], "text": "x", "intent": "greet", "language": "en"}),
             ("POST", "/api/workbench/intents/en/greet/restore", {"version": 1})]
    for method, path, body in calls:
        assert (await ib.http.request(method, path, json=body)).status_code == 401, path
        r = await ib.http.request(method, path, json=body, headers=ann.headers)
        assert r.status_code == 403 and "secret question" not in r.text, path
    # and an editor cannot mark corrections (the desk's route): 403
    editor = await ib.agent("eddie", "editor")
    r = await ib.http.get("/api/agent/corrections/options", headers=editor.headers)
    assert r.status_code == 403


async def test_personal_data_is_masked_in_what_is_stored_and_shown(ib) -> None:
    editor = await ib.agent("eddie", "editor")
    text = ("hi my name is Wang Lei, order DM2026110512 tracking SF123456789012 call 138 1234 5678 "
            "or mail wang.lei@example.com")
    await ib.feedback.record_unanswered("c1", text, "en", 0.1)
    zh = "我叫王磊，手机13812345678，订单DM2026110512还没到"
    await ib.feedback.record_fallback("c2", zh, "zh", None, None, "none")
    listing = await _inbox(ib, editor)
    shown = {m["text"] for m in _messages(listing)}
    assert shown == {"hi my name is {name}, order {order_number} tracking {tracking_number} call {phone} or mail "
                     "{email}", "我叫{name},手机{phone},订单{order_number}还没到"}
    with ib.engine.connect() as conn:
        stored = " ".join(conn.execute(select(db.inbox.c.text)).scalars())
    for secret in ("Wang", "王磊", "2026110512", "123456789012", "5678", "wang.lei", "13812345678"):
        assert secret not in stored and secret not in str(listing)
    # a name cannot go into the training data; the editor rewrites it first
    ids = [m["id"] for m in _messages(listing) if m["language"] == "en"]
    r = await ib.http.post("/api/workbench/inbox/add-to-intent", headers=editor.headers,
                           json={"item_ids": ids, "text": listing["groups"][0]["text"], "intent": "order_status",
                                 "language": "en"})
    assert r.status_code == 422 and "{name}" in r.json()["detail"]
    # what an editor types is masked too: a phone typed into the example does not reach the file
    r = await ib.http.post("/api/workbench/inbox/check", headers=editor.headers,
                           json={"text": "call me on 13812345678", "intent": "request_human", "language": "en"})
    assert r.status_code == 200 and r.json()["line"] == f"call me on [{EXAMPLE_VALUES['phone']}](phone)"


@pytest.mark.desk_settings(handoff_limit_desk_writes="5/minute")
async def test_the_accounts_write_limit_stops_a_flood(ib) -> None:
    editor = await ib.agent("eddie", "editor")
    codes = []
    for _ in range(8):
        r = await ib.http.post("/api/workbench/inbox/check", headers=editor.headers,
                               json={"text": "hello there", "intent": "greet", "language": "en"})
        codes.append(r.status_code)
    assert codes[:5] == [200] * 5 and set(codes[5:]) == {429}
    r = await ib.http.post("/api/workbench/inbox/dismiss", headers=editor.headers, json={"item_ids": [1]})
    assert r.status_code == 429 and r.headers["retry-after"]



@pytest.mark.desk_settings(handoff_limit_report_reads="3/minute")
async def test_the_accounts_read_limit_stops_a_flood_of_listings(ib) -> None:
    """Listing the inbox groups up to 2000 rows by meaning: an account's listings (inbox, intents, versions) share
    the report read limit; writes keep their own budget, and another editor is not held up."""
    editor = await ib.agent("reada", "editor")
    codes = [(await ib.http.get(path, headers=editor.headers)).status_code
             for path in ("/api/workbench/inbox", "/api/workbench/intents", "/api/workbench/versions",
                          "/api/workbench/inbox")]
    assert codes == [200, 200, 200, 429]
    r = await ib.http.get("/api/workbench/inbox", headers=editor.headers)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    r = await ib.http.post("/api/workbench/inbox/check", headers=editor.headers,
                           json={"text": "hello there", "intent": "greet", "language": "en"})
    assert r.status_code == 200
    other = await ib.agent("readb", "editor")
    assert (await ib.http.get("/api/workbench/inbox", headers=other.headers)).status_code == 200

def test_masking_and_training_lines() -> None:
    assert mask("where is DM2026110512") == "where is {order_number}"
    assert mask("这是我的电话：+86 139-1234-5678") == "这是我的电话:{phone}"
    assert mask("我姓王，快递SF123456789012") == "我姓{name},快递{tracking_number}"
    assert mask("this is Anna from Shanghai") == "this is {name} from Shanghai"
    assert mask("123456") == "{number}"
    for entity, value in EXAMPLE_VALUES.items():  # the made-up values are what the extractors find
        assert [(m.entity, m.value) for m in find_identifiers(value)] == [(entity, value)]
    assert training_line("track {tracking_number} pls") == f"track [{EXAMPLE_VALUES['tracking_number']}]" \
                                                           "(tracking_number) pls"
    for bad in ("hi {name}", "[x](y) and [z]", "- dash", ""):
        with pytest.raises(NluProblem):
            training_line(bad)


def test_a_database_from_before_the_channel_column_gets_it_and_keeps_its_rows(tmp_path: Path) -> None:
    """create_all makes new tables only: an inbox table made before ``channel`` existed gets the column when the
    gateway opens it, its rows read as channel unknown, and new rows carry one."""
    from sqlalchemy import inspect
    from sqlalchemy import text as sql_text

    from workbench import db
    from workbench.settings import WorkbenchSettings

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = db.make_engine(url)
    with engine.begin() as conn:  # the table as it was released
        conn.execute(sql_text("ALTER TABLE workbench_inbox DROP COLUMN channel"))
        conn.execute(sql_text("INSERT INTO workbench_inbox (ref, source, conversation_id, ts, language, text, key, "
                              "detail, status) VALUES ('old/1', 'kb_no_answer', 'c-old', 1, 'en', 'gift cards?', "
                              "'gift cards', '{}', 'open')"))
    engine.dispose()
    engine = db.make_engine(url)
    assert "channel" in {c["name"] for c in inspect(engine).get_columns("workbench_inbox")}
    inbox = Inbox(engine, WorkbenchSettings(database_url=url))
    assert inbox.insert([item("new/1", "kb_no_answer", "c-new", 2, "en", "gift cards??", channel="telegram")]) == 1
    messages = [m for g in inbox.groups()["groups"] for m in g["messages"]]
    assert sorted((m["text"], m["channel"]) for m in messages) == [("gift cards?", None), ("gift cards??", "telegram")]
    assert [m["text"] for g in inbox.groups(channel="telegram")["groups"] for m in g["messages"]] == ["gift cards??"]
    db.make_engine(url).dispose()  # opening it again changes nothing
