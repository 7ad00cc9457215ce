"""Where an answer comes from when the intent alone cannot say: the knowledge base, or the order flows.

"Can I send back a gift I got?" and "I want to send back order DM2026110512" share their words and often their
intent (``return_request``), but the first asks how things work and wants the rule, the second wants an action on
an order. Two pieces of evidence decide, neither of them a word list:

* a **question-vs-request** classifier (character n-gram softmax regression, the same learner as the frustration
  model), trained at first use from the project's own data: the knowledge base's example questions and the
  ``ask_policy`` examples are questions; the examples of the order intents, ``request_human`` and ``complaint``
  are requests;
* the **retrieval score**: the knowledge base must have a confident answer.

Used when an order form starts (answer, then offer the action as a button), for ``out_of_scope`` (a policy
question the NLU did not recognise), and before handing over a customer who only asked *about* the service.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.shared.frustration.classifier import (
    LabelledMessage,
    NgramClassifier,
    load_kb_questions,
    load_nlu_background,
)
from bot.shared.paths import REPO_ROOT
from bot.shared.patterns import ORDER_NUMBER, find_identifiers
from bot.shared.text import ZH, to_halfwidth

logger = logging.getLogger(__name__)
ROOT = REPO_ROOT
QUESTION, REQUEST = "question", "request"
# How surely a message must read as a question before the knowledge base answers it instead of the flow its intent
# started: set by what a misread request costs, and chosen on the NLU tuning split (tests/nlu/tuning_*.yml, never
# trained on), whose order requests, requests for a person and complaints are the requests a wrong reading hurts.
# - An order form (answer + the action as a one-tap button): the classifier's own decision, 0.5. On the tuning split,
#   12 of 98 (en) and 13 of 104 (zh) order requests without an order number read so AND have a KB answer, and they
#   get the article plus the button instead of the number question. (0.4 answered 10 + 6 more development policy
#   questions, but also "where is my order?" (0.43): the most common request must start the lookup.)
# - A handoff (calm customers only): 0.65; none of the 64 requests for a person or complaints would be answered.
FORM_QUESTION_THRESHOLD = 0.5
HANDOFF_QUESTION_THRESHOLD = 0.65
# - A sensitive topic read by the learned classifier alone, no listed term, frustration under the escalation
#   threshold: 0.5. The n-gram classifiers read long calm English messages with money words as fraud reports (and
#   as mildly frustrated, 36-56); of the 201 sensitive turns that must escalate in the escalation sets
#   (tests/bot/shared/frustration/eval_*.yml), 35 are read by the classifier alone and 1 of them (a phishing text
#   with a KB answer) would be answered - with the person one tap away - against 9 of the 13 calm development
#   questions handed over as "fraud" (0.4: 2 of 201 and 12 of 13).
SENSITIVE_QUESTION_THRESHOLD = 0.5
REQUEST_INTENTS = ("order_status", "delivery_delay", "change_address", "cancel_order", "return_request",
                   "refund_status", "exchange_request", "payment_issue", "request_human", "complaint",
                   "provide_order_number")
# The button offered after answering a question that shares an order intent (payload = the intent itself).
OFFERS: dict[str, dict[str, str]] = {
    "return_request": {"en": "Start a return", ZH: "申请退货"},
    "exchange_request": {"en": "Start an exchange", ZH: "申请换货"},
    "cancel_order": {"en": "Cancel an order", ZH: "取消订单"},
    "change_address": {"en": "Change a delivery address", ZH: "修改收货地址"},
    "refund_status": {"en": "Check my refund", ZH: "查询我的退款"},
    "order_status": {"en": "Track my order", ZH: "查询我的订单"},
    "delivery_delay": {"en": "Check my late order", ZH: "查询我的延误订单"},
    "request_human": {"en": "Talk to a person", ZH: "转人工"},
    "complaint": {"en": "Make a complaint", ZH: "我要投诉"},
}


def _normalise(text: str) -> str:
    return to_halfwidth(text).lower()


def _without_cue(examples: list[LabelledMessage]) -> list[LabelledMessage]:
    """Each example once more with its end punctuation swapped: the example questions end in "?" far more often
    than the request examples, and "where is my order?" must not count as a question for its question mark."""
    out = []
    for ex in examples:
        bare = ex.text.rstrip("?？!！.。 ")
        out.append(LabelledMessage(bare if bare != ex.text else bare + ("？" if ex.lang == ZH else "?"), ex.label,
                                   ex.lang, ex.weight))
    return out


@lru_cache(maxsize=1)
def classifier() -> NgramClassifier:
    """Trained at first use (about a second) from data/kb and data/nlu; nothing is downloaded or pickled."""
    nlu = sorted((ROOT / "data" / "nlu").glob("*.yml"))
    examples = (load_kb_questions([ROOT / "data" / "kb"], label=QUESTION)
                + load_nlu_background(nlu, ["ask_policy"], label=QUESTION, weight=1.0)
                + load_nlu_background(nlu, REQUEST_INTENTS, label=REQUEST, weight=1.0))
    examples += _without_cue(examples)
    model = NgramClassifier.train(examples, preprocess=_normalise, labels=(QUESTION, REQUEST))
    logger.info("question-vs-request classifier trained on %d examples", len(examples))
    return model


def question_probability(text: str) -> float:
    """P(the message asks how things work rather than for an action on the customer's own order)."""
    return float(classifier().predict_proba(_normalise(text))[0])


def _latest_text(tracker: Tracker) -> str:
    return (tracker.latest_message.get("text") or "").strip()


def follows_a_kb_answer(tracker: Tracker) -> bool:
    """The bot's previous turn answered from the knowledge base (it set ``kb_last_question`` between the customer's
    previous message and this one)."""
    from actions.knowledge import SLOT_LAST_QUESTION

    users = 0
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            users += 1
            if users == 2:
                return False
        elif users == 1 and event.get("event") == "slot" and event.get("name") == SLOT_LAST_QUESTION \
                and event.get("value"):
            return True
    return False


def is_a_question(tracker: Tracker, threshold: float = 0.5, *, follow_ups: bool = False) -> bool:
    """A typed message (not a button), about no particular order, that reads as a question about the rules. With
    ``follow_ups`` (the order forms), also a short follow-up right after a knowledge-base answer ("我的已经发货了"
    after the cancellation rule, read by the NLU as cancel_order): it continues the question, whatever its wording.
    Not for handoffs: "ok get me a human then" after an answer is a request."""
    from actions.knowledge import is_elliptical

    text = _latest_text(tracker)
    if not text or text.startswith("/"):
        return False
    if any(m.entity == ORDER_NUMBER for m in find_identifiers(text)):
        return False
    if question_probability(text) >= threshold:
        return True
    return follow_ups and is_elliptical(text) and follows_a_kb_answer(tracker)


async def answer_if_confident(
    dispatcher: CollectingDispatcher, tracker: Tracker, *, offer_intent: str | None = None,
    ask_feedback: bool = True,
) -> list[dict[str, Any]] | None:
    """Answer from the knowledge base when it has an answer (``knowledge.decide``); None (nothing said) otherwise. With
    ``offer_intent``, the answer is followed by the action the customer might want next, as a button."""
    from actions.knowledge import ANSWER, KnowledgeBaseDown, _give_answer, customer_language, decide_for

    language = customer_language(tracker)
    text = _latest_text(tracker)
    try:
        decision = await decide_for(tracker, text)
    except KnowledgeBaseDown:
        return None
    if decision.action != ANSWER:
        return None
    hit = decision.best
    offer = OFFERS.get(offer_intent or "")
    events = _give_answer(dispatcher, hit.id, hit.title, hit.answer, hit.score, language, text,
                          ask_feedback=ask_feedback and offer is None)
    if offer:
        dispatcher.utter_message(response="utter_offer_order_action",
                                 buttons=[{"title": offer[ZH if language == ZH else "en"],
                                           "payload": f"/{offer_intent}"}])
    return events
