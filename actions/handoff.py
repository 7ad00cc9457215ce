"""`action_handoff_to_human`: step aside for a person, with the reason, the priority and the feelings first.

Reads the reason and priority the Rasa policy decided for this turn (the ``escalation_decision`` record,
bot/shared/frustration/decision.py; it never scores the conversation again), records repeat/group complaints in
Redis, acknowledges the customer's feeling ("先共情再解决"), asks the
handoff service to queue the conversation (or open a ticket out of hours), sending the tracker part of the context
package it built from the tracker it holds (bot/shared/context_tracker.py), and tells the customer what happens next.
If the handoff service cannot be reached the request is kept in a Redis stream (re-sent by the gateways, see
handoff/undelivered.py) and the customer is told honestly: the request is recorded, without a queue position or a
wait it does not know. If it cannot even be kept, the customer is told it did not go through and to ask again.

The request carries no secrets: verification digits are removed and phone numbers masked (bot/shared/redact.py) before
it leaves the action server; the desk checks once more before storing.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import routing
from actions.settings import get_settings
from actions.verification import verified_customer
from bot.shared.context_tracker import tracker_part
from bot.shared.frustration.complaints import ComplaintConfig, ComplaintTracker, ProblemKey
from bot.shared.frustration.decision import DECISION_SLOT, for_handoff
from bot.shared.reasons import COMPLAINT, EXPLICIT_REQUEST, SENSITIVE_PREFIX, UPSET_REASONS
from bot.shared.redact import Redactor, scrub_stored
from bot.shared.text import EN, ZH
from bot.shared.tracker_events import applied_events, since_latest_user, user_events
from conversations import keys

logger = logging.getLogger(__name__)

PENDING_STREAM = keys.undelivered_handoffs()  # handoffs the service could not take; re-sent by the gateways
# Said when the request could not be delivered NOR kept (no domain response: no retrain needed for this rare case).
NOT_RECORDED = {
    ZH: "抱歉，转接人工客服的系统暂时出现故障，您的请求没能提交成功。请过几分钟再发送“人工”重试。",
    EN: "Sorry, a technical problem stopped me from passing your request to our agents, and it was not recorded. "
        "Please ask for a person again in a few minutes.",
}
RATE_LIMITED: dict[str, Any] = {"status": "rate_limited"}  # _send's answer when the desk refused with 429
MEANWHILE = {  # after a ticket: the desk leaves the conversation to the bot until an agent picks the ticket up
    ZH: "在此期间，您有其他问题也可以继续问我。客服的答复会发到您现在使用的这个渠道。",
    EN: "Meanwhile I'm still here for any other questions. The agent's answer will reach you right here.",
}
TOO_MANY = {
    ZH: "抱歉，您的网络连接在短时间内发起了过多的人工客服请求，请几分钟后再试。我仍可以继续为您解答问题。",
    EN: "Sorry, too many requests for a person came from your connection in a short time. Please try again in a "
        "few minutes; I can keep helping you meanwhile.",
}
QUESTION_REASONS = (EXPLICIT_REQUEST, COMPLAINT)  # reasons a question about the service can be mistaken for
ABOUT_THE_SERVICE = routing.HANDOFF_QUESTION_THRESHOLD  # reads this surely as a question: answered, not handed over
# The frustration score under which that is allowed. Long calm descriptions ("the courier was rude to my mum, how do
# I complain?") score 40-50 on wording alone; none of the escalation sets' requests for a person or complaints
# (tests/bot/shared/frustration/eval_*.yml, last turns, and the NLU tuning split's: 128) that read surely as a
# question with a confident answer scores 40-50 (the 2 answered at 40 stay the only ones: "how do I submit a
# complaint?"-type questions), while 5 more of the 58 development questions about the service that were handed over
# would get their answer (chosen on development data and the tuning split, 2026-12-06).
CALM_BELOW = 50


def may_be_a_question(reason: str, signals: dict[str, Any]) -> bool:
    """Every reason that fired is one a calm question about how things work can be mistaken for: asking for a
    person or complaining ("when do your agents work?", "how do I complain?"), or a sensitive topic that only the
    learned classifier read, without any listed term ("will you ever ask for my SMS code?", "paid with my ICBC
    card, how long does the refund take?"). A listed term (fire, lawyer, 12315...) or an intent always hands over."""
    fired = signals.get("fired") or [reason]
    learned_only = set(signals.get("learned_only") or [])  # written by the escalation engine, kept in the record

    def soft(name: str) -> bool:
        return name in QUESTION_REASONS or (name.startswith(SENSITIVE_PREFIX) and name in learned_only)

    return all(soft(name) for name in fired)


def question_bars(fired: list[str], signals: dict[str, Any]) -> tuple[float, float]:
    """(how surely the message must read as a question, the frustration it must stay under) to be answered instead
    of handed over. A request for a person or a complaint (an NLU intent or a listed term): the strict bar and
    CALM_BELOW. A sensitive topic only the learned classifier read (may_be_a_question): the lower bar
    (actions/routing.py says why) and the escalation threshold itself (long calm messages score 36-56, and a
    frustration that high would have fired its own reason)."""
    if any(name in QUESTION_REASONS for name in fired):
        return ABOUT_THE_SERVICE, CALM_BELOW
    return routing.SENSITIVE_QUESTION_THRESHOLD, float(signals.get("threshold") or CALM_BELOW)


settings = get_settings  # HANDOFF_URL, HANDOFF_INTERNAL_TOKEN, HANDOFF_TIMEOUT_S, REDIS_URL... (actions/settings.py)


_complaints: dict[ComplaintConfig, ComplaintTracker] = {}


def complaints(raw_config: dict[str, Any]) -> ComplaintTracker:
    """Complaint statistics with the windows of the model's escalation config (sent in the policy's record)."""
    config = ComplaintConfig.from_dict(raw_config)
    if config not in _complaints:
        from actions.redis_client import sync_redis

        _complaints[config] = ComplaintTracker(sync_redis(settings().redis_url), config)
    return _complaints[config]


def frustration_curve(events: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per-message frustration scores (written by the FrustrationScorer NLU component) with their times; messages
    that were rewound, undone or restarted away do not count (bot/shared/tracker_events.py)."""
    curve = []
    for event in user_events(events):
        score = ((event.get("parse_data") or {}).get("frustration") or {}).get("score")
        if score is not None:
            curve.append({"ts": float(event.get("timestamp") or 0), "score": float(score)})
    return curve


def _channel(tracker: Tracker, events: list[dict[str, Any]]) -> str:
    """The customer's own channel as the gateway named it (Rasa itself only sees its REST channel)."""
    users = user_events(events)
    if not users:
        return "webchat"
    return str((users[-1].get("metadata") or {}).get("channel") or tracker.get_latest_input_channel() or "webchat")


def latest_intent(tracker: Tracker) -> str | None:
    """The latest message's intent (rasa-sdk's helper; nlu_fallback kept: it is what the policy saw)."""
    return tracker.get_intent_of_latest_message(skip_fallback_intent=False) or (
        tracker.latest_message.get("intent") or {}).get("name")


def recorded_decision(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The escalation record the policy set for the customer's latest message (None if it set none this turn)."""
    found = None
    for event in since_latest_user(events):
        if event.get("event") == "slot" and event.get("name") == DECISION_SLOT:
            found = event.get("value")
    return found if isinstance(found, dict) else None


def _customer(tracker: Tracker) -> dict[str, Any]:
    verified = tracker.get_slot("verified_orders") or {}
    return {
        "id": tracker.get_slot("customer_id"),
        "tier": tracker.get_slot("customer_tier") or "regular",
        "verified": bool(verified) or bool(tracker.get_slot("customer_id")),
    }


def _record_complaint(tracker: Tracker, raw_config: dict[str, Any]) -> bool:
    """Repeat complaints (same customer + order, 7 days) and group incidents (same carrier/product, 1 hour)."""
    customer = tracker.get_slot("customer_id") or tracker.sender_id
    order = tracker.get_slot("order_number")
    tracker_ = complaints(raw_config)
    flagged = False
    if order:
        flagged = tracker_.record_complaint(str(customer), order).flagged
    carrier, product = tracker.get_slot("carrier"), tracker.get_slot("product_category")
    if carrier:
        tracker_.report_problem(str(customer), ProblemKey("carrier_hub", carrier))
    if product:
        tracker_.report_problem(str(customer), ProblemKey("product", product))
    return flagged


class ActionHandoffToHuman(Action):
    """Hands the conversation to a person with its reason and priority (tooling depends on this name)."""

    def name(self) -> str:
        return "action_handoff_to_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        language = ZH if tracker.get_slot("language") == ZH else EN
        intent = latest_intent(tracker)
        events = applied_events(tracker.applied_events())
        record = recorded_decision(events)
        if record is None:
            logger.warning("no escalation decision recorded for this turn (is the EscalationPolicy configured?)")
        tracker.slots.update(await verified_customer(tracker))  # who the customer is: the server's record only
        repeat = False
        if intent == COMPLAINT and record and record.get("complaints"):
            try:
                repeat = await asyncio.to_thread(_record_complaint, tracker, record["complaints"])
            except Exception as exc:  # noqa: BLE001 - complaint statistics must never block the handoff
                logger.warning("complaint tracking failed: %s", exc)
        # The one decision (the policy's, for the tier the server vouches for): looked up, not scored again.
        decision = for_handoff(record, tracker.get_slot("customer_tier"), intent, repeat)
        reason, priority, signals = decision["reason"], decision["priority"], decision["signals"]
        frustration = float(signals.get("frustration", 0) or 0)
        question_bar, calm_below = question_bars(signals.get("fired") or [reason], signals)
        if may_be_a_question(reason, signals) and frustration < calm_below \
                and routing.is_a_question(tracker, threshold=question_bar):
            # "When do your agents work?", "how fast are complaints answered?": a calm question ABOUT the service
            # gets its answer, with the person one tap away - not a handoff nobody asked for.
            offer = intent if intent in ("request_human", "complaint") else "request_human"
            # A sensitive topic only the n-grams read, asked surely as a question: "did you mean" too, when the
            # knowledge base is only fairly sure.
            suggest = not any(name in QUESTION_REASONS for name in signals.get("fired") or [reason]) \
                and routing.question_probability(tracker.latest_message.get("text") or "") \
                >= routing.SENSITIVE_SUGGEST_THRESHOLD
            answered = await routing.answer_if_confident(dispatcher, tracker, offer_intent=offer, or_suggest=suggest)
            if answered is not None:
                return answered

        # Feelings first, then what happens next.
        if reason.startswith(SENSITIVE_PREFIX):
            dispatcher.utter_message(response="utter_handoff_empathy_serious")
        elif reason in UPSET_REASONS:
            dispatcher.utter_message(response="utter_handoff_empathy_upset")
        else:
            dispatcher.utter_message(response="utter_handoff_empathy_request")

        body = {
            "conversation_id": tracker.sender_id,
            "channel": _channel(tracker, events),
            "reason_code": reason,
            "priority": priority,
            "language": language,
            "customer": _customer(tracker),
            "frustration": {"score": frustration, "curve": frustration_curve(events)},
            "signals": {k: v for k, v in signals.items() if isinstance(v, (str, int, float, bool, list))},
            "summary": None,
            # The tracker part of the context package, from the tracker this action holds (escalating turn
            # included): the desk never reads the tracker of a running turn.
            "tracker": tracker_part(list(tracker.events or []), dict(tracker.slots or {})),
        }
        body = redact_request(body, tracker)
        result, kept = await self._send(body)
        if result == RATE_LIMITED:
            dispatcher.utter_message(text=TOO_MANY[language])
            return [ActiveLoop(None), SlotSet("requested_slot", None), SlotSet("handoff_active", False)]
        if result is None and not kept:
            # Nothing reached anyone: say so, and leave the conversation free to escalate again.
            dispatcher.utter_message(text=NOT_RECORDED[language])
            return [ActiveLoop(None), SlotSet("requested_slot", None), SlotSet("handoff_active", False)]
        if result is None:
            # Kept for re-sending: recorded, but no queue position or wait we do not have.
            dispatcher.utter_message(response="utter_handoff_recorded")
        elif result.get("status") == "queued":
            wait_min = max(1, round((result.get("expected_wait_s") or 60) / 60))
            dispatcher.utter_message(response="utter_handoff_queued", wait_minutes=wait_min)
        else:
            dispatcher.utter_message(response="utter_handoff_ticket", ticket_id=result.get("ticket_id") or "-",
                                     next_contact=_format_time(result.get("next_contact"), language))
            dispatcher.utter_message(text=MEANWHILE[language])
        # A form the bot was filling (e.g. asking for the order number) stops: the person takes it from here.
        return [ActiveLoop(None), SlotSet("requested_slot", None), SlotSet("handoff_active", True),
                SlotSet("handoff_reason", reason), SlotSet("handoff_priority", float(priority))]

    async def _send(self, body: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
        """(the desk's answer or None, whether the request is safe: delivered or kept for re-sending)."""
        cfg = settings()
        try:
            async with httpx.AsyncClient(timeout=cfg.handoff_timeout_s) as http:
                response = await http.post(f"{cfg.handoff_url.rstrip('/')}/internal/handoffs", json=body,
                                           headers={"X-Internal-Token": cfg.handoff_internal_token})
            if 200 <= response.status_code < 300:
                return response.json(), True
            if response.status_code == 429:
                # The desk refused on purpose (per-client handoff limit): not an outage, nothing to re-send.
                logger.warning("handoff refused: too many handoffs from this client")
                return RATE_LIMITED, False
            logger.error("handoff service answered HTTP %s", response.status_code)
        except (httpx.HTTPError, ValueError) as exc:
            logger.error("handoff service unreachable: %s", exc)
        return None, await asyncio.to_thread(self._keep_undelivered, body)

    @staticmethod
    def _keep_undelivered(body: dict[str, Any]) -> bool:
        import json

        import redis

        from actions.redis_client import sync_redis

        try:
            sync_redis(settings().redis_url, socket_timeout=settings().handoff_timeout_s).xadd(
                PENDING_STREAM, {"body": json.dumps(body, ensure_ascii=False), "ts": time.time()},
                maxlen=settings().handoff_undelivered_maxlen, approximate=True,
            )
            return True
        except redis.RedisError as exc:
            logger.error("could not keep the undelivered handoff either: %s", exc)
            return False


def redact_request(body: dict[str, Any], tracker: Tracker) -> dict[str, Any]:
    """The request without verification digits or full phone numbers (signals and summary are free text)."""
    redactor = Redactor.from_sources({"slots": dict(tracker.slots or {}), "events": list(tracker.events or [])})
    return scrub_stored(redactor.deep(body), redactor)


def _format_time(iso: str | None, language: str) -> str:
    if not iso:
        return "明天 10:00 前" if language == ZH else "by 10:00 tomorrow"
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return moment.strftime("%m月%d日 %H:%M 前") if language == ZH else moment.strftime("by %H:%M on %b %d")
