"""Agent desk API (used by the console at /agent): login, queue, claim, reply, transfer, hand back, close, live
events. Every state-changing call is audited (handoff.handoffs.HandoffService.audit), and so is every read of a
conversation (allowed or refused).

Security: logins are throttled per account and per client address (handoff/login_guard.py); every state-changing
request must come from the gateway's own origin (handoff.deps.same_origin, for the whole router); a conversation
(handoff, context, transcript, live messages) is readable only by its agent, by any agent while it waits in the
queue (to decide whether to claim it), and by supervisors (:func:`may_read`).
"""
from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from bot.shared.redact import GENERIC as GENERIC_REDACTOR
from bot.shared.text import clean_text
from conversations import keys
from conversations.protect import client_ip, client_ref
from conversations.sse import SSE_HEADERS, STREAM_ID, stream_events
from conversations.store import decode_entry
from handoff import corrections
from handoff.agents import ROLES, USERNAME_PATTERN, AccountError, Agent, AgentStore, UsernameTaken
from handoff.alerts import SupervisorAlerts
from handoff.context import label_buttons
from handoff.deps import (
    SESSION_COOKIE,
    AgentDep,
    AgentsDep,
    CannedDep,
    DeskDep,
    LoginGuardDep,
    RedisDep,
    SettingsDep,
    StoreDep,
    SupervisorDep,
    UserDep,
    same_origin,
    session_token,
)
from handoff.handoffs import (
    COMPLAINT_TYPES,
    CSAT_PAYLOAD_PREFIX,
    REASON_CODES,
    RESOLUTION_CODES,
    DeskError,
    HandoffService,
)
from handoff.notes import NOTE_MAX_CHARS, Notes
from handoff.presence import CustomerSignals

router = APIRouter(prefix="/api/agent", tags=["agent desk"], dependencies=[Depends(same_origin)])


def get_notes(redis: RedisDep, desk: DeskDep) -> Notes:
    return Notes(redis, desk.retention_s, desk.desk_events_maxlen)


NotesDep = Annotated[Notes, Depends(get_notes)]


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)


class ReplyIn(BaseModel):
    text: str = Field(min_length=1, max_length=100_000)
    message_id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[A-Za-z0-9_-]{1,64}$")


class AssignIn(BaseModel):
    to_agent_id: str = Field(min_length=1, max_length=64)


class CorrectionIn(BaseModel):
    """What the customer actually wanted (handoff/corrections.py): one intent or one article, for the customer
    message ``message_id`` (default: their last own message before the handoff)."""

    intent: str | None = Field(default=None, max_length=80)
    article_id: str | None = Field(default=None, max_length=120)
    message_id: str | None = Field(default=None, pattern=r"^[0-9]{1,20}-[0-9]{1,20}$")


class HandBackIn(BaseModel):
    correction: CorrectionIn | None = None


class CloseIn(BaseModel):
    resolution: Literal[RESOLUTION_CODES]  # type: ignore[valid-type]
    complaint_type: Literal[COMPLAINT_TYPES] | None = None  # type: ignore[valid-type]  # complaints only
    correction: CorrectionIn | None = None


def _desk_call_error(exc: DeskError) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=exc.detail)


@router.post("/login")
async def login(body: LoginIn, request: Request, response: Response, agents: AgentsDep, desk: DeskDep,
                settings: SettingsDep, guard: LoginGuardDep) -> dict[str, Any]:
    ip_ref = client_ref(client_ip(request, settings.trusted_proxies), settings.client_salt)
    account_ref = client_ref("account:" + body.username, settings.client_salt)
    locked = await guard.begin(account_ref, ip_ref)
    if locked is not None:  # refused before the password is looked at: a right one gets the same answer
        raise HTTPException(status_code=429, detail=locked.detail, headers={"Retry-After": str(locked.retry_after_s)})
    token = None
    try:
        token = await agents.login(body.username, body.password)
    finally:
        newly_locked = await guard.end(account_ref, ip_ref, success=token is not None)
    if token is None:
        await _audit_failed_login(desk, agents, body.username, ip_ref, newly_locked)
        raise HTTPException(status_code=401, detail="Wrong username or password.")
    agent = await agents.authenticate(token)
    assert agent is not None
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", max_age=settings.handoff_session_ttl_s,
                        path="/")
    await desk.audit(agent, "login", "", "", {})
    return {"token": token, "agent": agent.public()}


async def _audit_failed_login(desk: HandoffService, agents: AgentStore, username: str, client: str,
                              locked: list[str]) -> None:
    """Supervisors see guessing in the audit log: the account (only when it exists: a typed name may be a
    password) and the client's pseudonym; a lock is an entry of its own."""
    account = username if await agents.id_for(username) else None
    await desk.audit(None, "login_failed", "", "", {"account": account, "client": client})
    for scope in locked:
        await desk.audit(None, "login_locked", "", "", {"scope": scope, "account": account, "client": client})


@router.post("/logout")
async def logout(request: Request, response: Response, agent: UserDep, agents: AgentsDep, desk: DeskDep
                 ) -> dict[str, str]:
    await agents.logout(session_token(request) or "", agent.id)
    response.delete_cookie(SESSION_COOKIE, path="/")
    await desk.audit(agent, "logout", "", "", {})
    return {"status": "logged_out"}


@router.get("/me")
async def me(agent: UserDep, agents: AgentsDep) -> dict[str, Any]:
    return {**agent.public(), "active": await agents.active_count(agent.id)}


@router.get("/meta")
async def meta(agent: AgentDep) -> dict[str, list[str]]:
    return {"reason_codes": list(REASON_CODES), "resolution_codes": list(RESOLUTION_CODES),
            "complaint_types": list(COMPLAINT_TYPES)}


@router.get("/agents")
async def list_agents(agent: AgentDep, agents: AgentsDep) -> list[dict[str, Any]]:
    online = set(await agents.online_ids())
    return [{**a.public(), "online": a.id in online, "active": await agents.active_count(a.id)}
            for a in await agents.all()]


@router.get("/queue")
async def queue(agent: AgentDep, desk: DeskDep) -> list[dict[str, Any]]:
    return await desk.queue()


@router.get("/mine")
async def mine(agent: AgentDep, desk: DeskDep) -> list[dict[str, Any]]:
    return await desk.mine(agent)


def may_read(agent: Agent, handoff: dict[str, str]) -> bool:
    """Who may read a conversation: supervisors; its agent (``agent_id``: the owner, or the last one of a closed or
    handed-back case); any agent while it waits in the queue, unless it is a reopened supervisors-only case."""
    if agent.is_supervisor:
        return True
    if handoff.get("agent_id") and handoff.get("agent_id") == agent.id:
        return True
    return handoff.get("status") == "queued" and handoff.get("supervisor_only") != "1"


async def _readable_row(desk: HandoffService, agent: Agent, handoff_id: str, what: str) -> dict[str, Any]:
    """The handoff's summary row if ``agent`` may read it; a refusal (403) is audited too."""
    try:
        handoff = await desk.require(handoff_id)
    except DeskError as exc:
        raise _desk_call_error(exc) from exc
    if not may_read(agent, handoff):
        await desk.audit(agent, "view_denied", handoff["conversation_id"], handoff_id, {"what": what})
        raise HTTPException(status_code=403, detail="This conversation belongs to another agent.")
    return desk.summary_row(handoff)


# Debug data: raw slots are shown to supervisors only (behind the console's debug toggle), and never these.
_NEVER_SLOTS = {"session_started_metadata", "phone_last4"}


def _for_reader(agent: Agent, context: dict[str, Any]) -> dict[str, Any]:
    """The stored package as this reader may see it: agents get no raw slots (identifiers carry what they need)."""
    slots = {k: v for k, v in (context.get("slots") or {}).items() if k not in _NEVER_SLOTS}
    return {**context, "slots": slots if agent.is_supervisor else {}}


async def _live_messages(desk: HandoffService, store: Any, conversation_id: str, handoff_id: str
                         ) -> list[dict[str, Any]]:
    """The live transcript as agents see it: button taps labelled with the title the customer saw (matched on the
    raw text, then redacted), no verification digits, phones masked, agents' display names."""
    redactor = await desk.redactor(conversation_id, handoff_id)
    raw = [{**m.to_dict(), "author": a or None} for m, a in await store.entries(conversation_id)]
    out = []
    for message in label_buttons(raw):
        shown = message.get("shown")
        message = redactor.message(message)
        if shown:
            message["shown"] = redactor.text(shown)
        out.append(message)
    return out


def _reopen(row: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A case reopened by a 1-2 star rating: the stars and what the customer wrote after the rating question."""
    if not (row.get("csat") and row["csat"] <= 2 and row.get("supervisor_only")):
        return None
    asked = max((i for i, m in enumerate(messages) if any(
        str(b.get("payload", "")).startswith(CSAT_PAYLOAD_PREFIX) for b in m.get("buttons") or [])), default=-1)
    words = [m["text"] for m in messages[asked + 1:] if m["role"] == "customer" and not m.get("shown")]
    return {"stars": row["csat"], "words": words[-5:]}


@router.get("/handoffs/{handoff_id}")
async def get_handoff(handoff_id: str, agent: AgentDep, desk: DeskDep, store: StoreDep, notes: NotesDep
                      ) -> dict[str, Any]:
    """The handoff, its context package, the live transcript (including messages after the handoff), the internal
    notes and, for a case reopened by a low rating, the rating and the customer's words."""
    row = await _readable_row(desk, agent, handoff_id, "handoff")
    context = _for_reader(agent, await desk.context(handoff_id))
    messages = await _live_messages(desk, store, row["conversation_id"], handoff_id)
    await desk.audit(agent, "view", row["conversation_id"], handoff_id, {})
    return {"handoff": row, "context": context, "messages": messages, "reopen": _reopen(row, messages),
            "notes": await notes.list(row["conversation_id"]),
            "correction": corrections.loads(await desk.redis.hget(keys.handoff(handoff_id), "correction"))}


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


@router.get("/handoffs/{handoff_id}/notes")
async def list_notes(handoff_id: str, agent: AgentDep, desk: DeskDep, notes: NotesDep) -> list[dict[str, Any]]:
    row = await _readable_row(desk, agent, handoff_id, "notes")
    return await notes.list(row["conversation_id"])


@router.post("/handoffs/{handoff_id}/notes", status_code=201)
async def add_note(handoff_id: str, body: NoteIn, agent: AgentDep, desk: DeskDep, notes: NotesDep
                   ) -> dict[str, Any]:
    """An internal note (agents and supervisors who may read the conversation); stored as text, audited."""
    row = await _readable_row(desk, agent, handoff_id, "note")
    if len(body.text) > NOTE_MAX_CHARS:
        raise HTTPException(status_code=413, detail=f"Note too long: the limit is {NOTE_MAX_CHARS} characters.")
    text = clean_text(body.text, max_chars=NOTE_MAX_CHARS)
    if not text:
        raise HTTPException(status_code=422, detail="Empty note.")
    note = await notes.add(agent, row["conversation_id"], handoff_id, text)
    await desk.audit(agent, "note", row["conversation_id"], handoff_id, {"note_id": note["id"], "chars": len(text)})
    return note


@router.post("/handoffs/{handoff_id}/claim")
async def claim(handoff_id: str, agent: AgentDep, desk: DeskDep) -> dict[str, Any]:
    try:
        return desk.summary_row(await desk.claim(agent, handoff_id))
    except DeskError as exc:
        raise _desk_call_error(exc) from exc


@router.post("/handoffs/{handoff_id}/messages")
async def reply(handoff_id: str, body: ReplyIn, agent: AgentDep, desk: DeskDep, settings: SettingsDep
                ) -> dict[str, Any]:
    if len(body.text) > settings.web_max_message_chars:
        raise HTTPException(status_code=413, detail=f"Message too long: the limit is {settings.web_max_message_chars}.")
    text = clean_text(body.text, max_chars=settings.web_max_message_chars)
    if not text:
        raise HTTPException(status_code=422, detail="Empty message.")
    try:
        message_id, new = await desk.reply(agent, handoff_id, text, body.message_id)
    except DeskError as exc:
        raise _desk_call_error(exc) from exc
    return {"id": message_id, "duplicate": not new}


async def _not_disabled(agents: AgentStore, target_id: str) -> None:
    """A disabled account takes no conversation (issue 17: accounts)."""
    target = await agents.get(target_id)
    if target is not None and target.disabled:
        raise HTTPException(status_code=409, detail="That account is disabled.")


@router.post("/handoffs/{handoff_id}/transfer")
async def transfer(handoff_id: str, body: AssignIn, agent: AgentDep, desk: DeskDep, agents: AgentsDep
                   ) -> dict[str, Any]:
    await _not_disabled(agents, body.to_agent_id)
    try:
        return desk.summary_row(await desk.assign(agent, handoff_id, body.to_agent_id, "transfer"))
    except DeskError as exc:
        raise _desk_call_error(exc) from exc


@router.post("/handoffs/{handoff_id}/reassign")
async def reassign(handoff_id: str, body: AssignIn, supervisor: SupervisorDep, desk: DeskDep, agents: AgentsDep
                   ) -> dict[str, Any]:
    await _not_disabled(agents, body.to_agent_id)
    try:
        return desk.summary_row(await desk.assign(supervisor, handoff_id, body.to_agent_id, "reassign"))
    except DeskError as exc:
        raise _desk_call_error(exc) from exc


@router.post("/handoffs/{handoff_id}/handback")
async def hand_back(handoff_id: str, agent: AgentDep, desk: DeskDep, redis: RedisDep, canned: CannedDep,
                    body: HandBackIn | None = None) -> dict[str, Any]:
    correction = body.correction if body else None
    _check_correction(correction, canned)
    try:
        row = desk.summary_row(await desk.release(agent, handoff_id, "handed_back"))
    except DeskError as exc:
        raise _desk_call_error(exc) from exc
    return await _with_correction(row, correction, agent, desk, redis, "handed_back")


@router.post("/handoffs/{handoff_id}/close")
async def close(handoff_id: str, body: CloseIn, agent: AgentDep, desk: DeskDep, redis: RedisDep,
                canned: CannedDep) -> dict[str, Any]:
    _check_correction(body.correction, canned)
    try:
        if body.complaint_type and (await desk.require(handoff_id)).get("reason_code") != "complaint":
            raise HTTPException(422, "Only a complaint has a complaint type.")
        row = desk.summary_row(await desk.release(agent, handoff_id, "closed", body.resolution,
                                                  body.complaint_type or ""))
    except DeskError as exc:
        raise _desk_call_error(exc) from exc
    return await _with_correction(row, body.correction, agent, desk, redis, "closed")


def _check_correction(correction: CorrectionIn | None, canned: Any) -> None:
    """A correction names one known intent or one known article (422 before anything changes)."""
    if correction is None:
        return
    if bool(correction.intent) == bool(correction.article_id):
        raise HTTPException(422, "Mark either an intent or an article.")
    if correction.intent and correction.intent not in corrections.intents():
        raise HTTPException(422, f"Unknown intent {correction.intent!r}.")
    if correction.article_id and correction.article_id not in _article_titles(canned, "en"):
        raise HTTPException(422, f"Unknown article {correction.article_id!r}.")


def _article_titles(canned: Any, language: str) -> dict[str, str]:
    found = {a["id"]: a["title"] for a in canned.search("zh" if language == "en" else "en", "", 100_000)}
    return found | {a["id"]: a["title"] for a in canned.search(language, "", 100_000)}


async def _with_correction(row: dict[str, Any], correction: CorrectionIn | None, agent: Agent,
                           desk: HandoffService, redis: Any, at: str) -> dict[str, Any]:
    """The released handoff's row, plus the correction stored for the workbench inbox (handoff/corrections.py)."""
    if correction is None:
        return row
    handoff = await desk.require(row["handoff_id"])
    try:
        stored = await corrections.record(redis, handoff, agent.id, at, intent=correction.intent,
                                          article_id=correction.article_id, message_id=correction.message_id,
                                          maxlen=desk.desk_events_maxlen)
    except corrections.CorrectionError as exc:
        return {**row, "correction": None, "correction_error": exc.detail}
    await desk.audit(agent, "correction", row["conversation_id"], row["handoff_id"],
                     {"intent": correction.intent, "article_id": correction.article_id, "at": at})
    return {**row, "correction": stored}


@router.get("/corrections/options")
async def correction_options(agent: AgentDep, canned: CannedDep, lang: Literal["zh", "en"] = "zh"
                             ) -> dict[str, Any]:
    """What an agent can mark as what the customer actually wanted: the bot's intents and the articles."""
    titles = _article_titles(canned, lang)
    return {"intents": corrections.intents(),
            "articles": [{"id": k, "title": v} for k, v in sorted(titles.items(), key=lambda kv: kv[1])]}


@router.get("/canned")
async def canned(agent: AgentDep, answers: CannedDep, lang: Literal["zh", "en"] = "zh",
                 q: str = Query(default="", max_length=100)) -> list[dict[str, str]]:
    return answers.search(lang, q)


def get_alerts(redis: RedisDep, desk: DeskDep) -> SupervisorAlerts:
    return SupervisorAlerts(redis, desk)


AlertsDep = Annotated[SupervisorAlerts, Depends(get_alerts)]


@router.get("/alerts")
async def alerts(supervisor: SupervisorDep, board: AlertsDep) -> list[dict[str, Any]]:
    """Open alerts for supervisors: SLA pickup, undelivered handoffs, repeat complaints, group incidents."""
    return await board.list()


@router.post("/alerts/{alert_id}/ack")
async def acknowledge_alert(alert_id: str, supervisor: SupervisorDep, board: AlertsDep) -> dict[str, str]:
    if len(alert_id) > 64 or not await board.acknowledge(alert_id, supervisor):
        raise HTTPException(status_code=404, detail="No such open alert.")
    return {"status": "acknowledged", "id": alert_id}


class NewAgentIn(BaseModel):
    username: str = Field(pattern=USERNAME_PATTERN)
    display_name: str = Field(default="", max_length=80)
    password: str = Field(min_length=1, max_length=200)
    role: Literal[ROLES]  # type: ignore[valid-type]
    max_concurrent: int | None = Field(default=None, ge=1, le=50)


@router.post("/agents", status_code=201)
async def create_agent(body: NewAgentIn, supervisor: SupervisorDep, agents: AgentsDep, desk: DeskDep
                       ) -> dict[str, Any]:
    """A supervisor creates an agent or supervisor account (the same rules as ``python -m handoff.admin``)."""
    display_name = clean_text(body.display_name, max_chars=80) or None
    try:
        account = await agents.create(body.username, body.password, body.role, display_name, body.max_concurrent)
    except AccountError as exc:
        raise HTTPException(status_code=409 if isinstance(exc, UsernameTaken) else 422, detail=str(exc)) from exc
    await desk.audit(supervisor, "create_agent", "", "", {"agent_id": account.id, "username": account.username,
                                                          "role": account.role})
    return account.public()


@router.get("/audit")
async def audit(supervisor: SupervisorDep, desk: DeskDep, count: int = Query(default=200, ge=1, le=1000)
                ) -> list[dict[str, Any]]:
    return await desk.audit_log(count)


@router.get("/events")
async def events(
    request: Request, agent: AgentDep, redis: RedisDep, desk: DeskDep, settings: SettingsDep, agents: AgentsDep,
    store: StoreDep,
    handoff_id: str | None = Query(default=None, max_length=64),
    after: str | None = Query(default=None, max_length=100),
) -> StreamingResponse:
    """Live desk events (queue changes, claims, alerts) and, with ``handoff_id``, that conversation's messages.

    Event id = ``<desk stream id>|<conversation stream id>``; Last-Event-ID resumes exactly where it stopped.
    Opening a conversation's stream is a read: checked (:func:`may_read`) and audited. The right is checked again
    on every desk event about that handoff and on every keep-alive; once it is lost (claimed by a colleague,
    transferred away) no further message is sent and the stream ends.
    """
    conversation_id = None
    access = {"granted": True, "owner": False}
    # Read state for the web chat customer: while the owning agent has the conversation open here, its customer
    # messages count as read (handoff/presence.py); ``seen`` is the newest customer message sent to this console.
    signals = CustomerSignals(redis, settings.web_conversation_ttl_s)
    seen = {"customer": ""}
    if handoff_id:
        row = await _readable_row(desk, agent, handoff_id, "events")
        conversation_id = row["conversation_id"]
        access["owner"] = row["status"] == "claimed" and row.get("agent_id") == agent.id
        await desk.audit(agent, "view_events", conversation_id, handoff_id, {})

    async def mark_read() -> None:
        if conversation_id and access["owner"] and access["granted"] and seen["customer"]:
            await signals.mark_read(conversation_id, seen["customer"])

    async def recheck() -> None:
        if handoff_id and access["granted"]:
            handoff = await desk.get_row_fields(handoff_id)
            access["granted"] = handoff is not None and may_read(agent, handoff)
            was_owner = access["owner"]
            access["owner"] = bool(handoff and handoff.get("status") == "claimed"
                                   and handoff.get("agent_id") == agent.id)
            if access["owner"] and not was_owner:
                await mark_read()  # just claimed with the conversation open: what it shows is read now

    redactor = await desk.redactor(conversation_id, handoff_id) if conversation_id else GENERIC_REDACTOR
    offered: dict[str, str] = {}
    if conversation_id:
        for m, _ in await store.entries(conversation_id):
            if m.role == "customer":
                seen["replayed"] = m.id  # marked read once the replay reaches it, not once per older message
            for button in m.buttons or []:
                if isinstance(button, dict) and button.get("payload") and button.get("title"):
                    offered[str(button["payload"]).strip()] = str(button["title"])
    seen["customer"] = seen.get("replayed", "")
    await mark_read()  # opened by its owner: everything the customer wrote so far is on the agent's screen
    resume = request.headers.get("last-event-id") or after or ""
    parts = resume.split("|") if resume else []
    desk_cursor = parts[0] if parts and _valid(parts[0]) else "$"
    cursors = {keys.desk_events(): desk_cursor}
    if conversation_id:
        conv_cursor = parts[1] if len(parts) > 1 and _valid(parts[1]) else "0-0"
        cursors[keys.messages(conversation_id)] = conv_cursor
    if desk_cursor == "$":
        # "$" cannot be a resume point; pin it to the current last id so the event ids stay resumable.
        last = await redis.xrevrange(keys.desk_events(), count=1)
        cursors[keys.desk_events()] = last[0][0].decode() if last else "0-0"

    async def format_entry(key: str, entry_id: bytes, data: dict[bytes, bytes], _: dict[str, str]):
        if key == keys.desk_events():
            event = {k.decode(): v.decode() for k, v in data.items()}
            if handoff_id and event.get("handoff_id") == handoff_id:
                await recheck()
            return "desk", event
        if not access["granted"]:
            return None
        message, author = decode_entry(entry_id, data)
        raw = message.to_dict()
        if raw.get("role") == "customer":
            seen["customer"] = message.id
            if _stream_order(message.id) >= _stream_order(seen.get("replayed") or "0-0"):
                await mark_read()
        for button in raw.get("buttons") or []:  # remember what was offered, to label the customer's tap
            if isinstance(button, dict) and button.get("payload") and button.get("title"):
                offered[str(button["payload"]).strip()] = str(button["title"])
        out = {**redactor.message(raw), "author": author or None, "conversation_id": conversation_id}
        shown = offered.get(str(raw.get("text") or "").strip()) if raw.get("role") == "customer" else None
        if shown:
            out["shown"] = redactor.text(shown)
        return "message", out

    async def tick() -> None:
        await agents.touch(agent.id)
        await recheck()

    async def frames() -> AsyncIterator[str]:
        inner = stream_events(request, redis, cursors, settings.web_sse_block_ms, format_entry, tick)
        async with aclosing(inner):
            async for chunk in inner:
                yield chunk
                if not access["granted"]:
                    return

    return StreamingResponse(frames(), media_type="text/event-stream", headers=SSE_HEADERS)


def _stream_order(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms or 0), int(seq or 0)


def _valid(cursor: str) -> bool:
    return re.match(STREAM_ID, cursor) is not None
