"""Questions about how things work get their answer even when they share words with an order request; requests
still start the order flows. Real index, real classifier (trained from the project's data); the phrasings here are
written for this test, not taken from any evaluation set."""
from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import forms, knowledge, routing
from actions.handoff import ActionHandoffToHuman
from tests.actions.order_fixtures import Env, domain


def tracker(text: str, intent: str, language: str = "en", slots: dict[str, Any] | None = None,
            active_loop: str | None = None) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": []}
    events: list[dict] = [{"event": "user", "text": text, "parse_data": latest}]
    return Tracker("conv-route", {"language": language, **(slots or {})}, latest, events, False, None,
                   {"name": active_loop} if active_loop else {}, "action_listen")


@pytest.mark.parametrize(("text", "question"), [
    ("Could a present someone bought me be returned?", True),
    ("快递一般几天能到新疆", True),
    ("return order DM2026110512 please, it's broken", False),
    ("帮我取消订单DM2026110512", False),
])
def test_question_or_request(text: str, question: bool) -> None:
    assert (routing.question_probability(text) >= 0.5) is question


async def test_a_policy_question_with_an_order_intent_is_answered_then_offered(env: Env) -> None:
    dispatcher = CollectingDispatcher()
    events = await forms.ValidateReturnForm().run(
        dispatcher, tracker("how many days do i have to send something back if i just changed my mind?",
                            "return_request", active_loop="return_form"), domain())  # as Rasa sends it at activation
    assert dispatcher.messages[0]["text"] and dispatcher.messages[0]["kb"]["id"].startswith("returns")
    assert dispatcher.messages[-1]["response"] == "utter_offer_order_action"
    assert dispatcher.messages[-1]["buttons"] == [{"title": "Start a return", "payload": "/return_request"}]
    assert {"event": "slot", "timestamp": None, "name": "order_lookup_stopped", "value": True} in events
    assert {"event": "slot", "timestamp": None, "name": "requested_slot", "value": None} in events


async def test_a_request_still_starts_the_form(env: Env) -> None:
    dispatcher = CollectingDispatcher()
    events = await forms.ValidateOrderVerificationForm().run(
        dispatcher, tracker("i want to cancel my order now", "cancel_order", active_loop="order_verification_form"),
        domain())
    assert not any(m.get("kb") for m in dispatcher.messages)
    assert not any(e.get("name") == "order_lookup_stopped" for e in events)


async def test_out_of_scope_with_a_confident_answer_is_answered_else_declined() -> None:
    dispatcher = CollectingDispatcher()
    await knowledge.ActionOutOfScope().run(dispatcher, tracker("do you ship to xinjiang and how long", "out_of_scope"),
                                           {})
    assert dispatcher.messages[0]["kb"]["id"] == "shipping-remote-regions"
    dispatcher = CollectingDispatcher()
    await knowledge.ActionOutOfScope().run(dispatcher, tracker("what's the weather in paris tomorrow", "out_of_scope"),
                                           {})
    assert [m["response"] for m in dispatcher.messages] == ["utter_out_of_scope"]


async def test_out_of_scope_that_reads_as_a_question_with_a_middling_answer_gets_did_you_mean() -> None:
    text = "whats the rule for sending things back and who pays the postage"
    assert knowledge.decide(text, "en", None).action == knowledge.SUGGEST  # fairly sure, not confident
    dispatcher = CollectingDispatcher()
    events = await knowledge.ActionOutOfScope().run(dispatcher, tracker(text, "out_of_scope"), {})
    assert [m["response"] for m in dispatcher.messages] == ["utter_kb_did_you_mean"]
    assert "returns-shipping-cost" in dispatcher.messages[0]["buttons"][0]["payload"]
    assert {"event": "slot", "timestamp": None, "name": knowledge.SLOT_LAST_QUESTION, "value": text} in events


async def test_a_short_follow_up_is_read_with_the_previous_question() -> None:
    dispatcher = CollectingDispatcher()
    slots = {"kb_last_question": "how long does a refund take if I paid with alipay?"}
    await knowledge.ActionAnswerPolicy().run(dispatcher, tracker("and by bank card?", "ask_policy", slots=slots), {})
    assert dispatcher.messages[0]["kb"]["id"].startswith("refunds")


async def test_a_calm_question_about_agents_is_answered_with_a_person_one_tap_away() -> None:
    dispatcher = CollectingDispatcher()
    events = await ActionHandoffToHuman().run(
        dispatcher, tracker("what hours do your human agents work at weekends?", "request_human"), domain())
    assert dispatcher.messages[0]["kb"]["id"].startswith("account-service")
    assert dispatcher.messages[-1]["buttons"] == [{"title": "Talk to a person", "payload": "/request_human"}]
    assert not any(e.get("name") == "handoff_active" for e in events)


async def test_a_payment_question_gets_the_specific_article(env: Env) -> None:
    from actions.order_flows import ActionOrderPayment

    dispatcher = CollectingDispatcher()
    await ActionOrderPayment().run(dispatcher, tracker("I was charged twice for the same order, what should I do?",
                                                       "payment_issue"), domain())
    assert dispatcher.messages[0]["kb"]["id"] == "payment-charged-twice"


async def test_a_question_about_the_order_in_the_conversation_is_not_rerouted(env: Env) -> None:
    dispatcher = CollectingDispatcher()
    events = await forms.ValidateOrderVerificationForm().run(
        dispatcher, tracker("how long does delivery usually take?", "order_status",
                            slots={"order_number": "DM2026110512"}, active_loop="order_verification_form"), domain())
    assert not any(m.get("kb") for m in dispatcher.messages)
    assert not any(e.get("name") == "order_lookup_stopped" for e in events)


@pytest.mark.parametrize(("slot", "response"), [("order_number", "utter_order_number_invalid"),
                                                ("phone_last4", "utter_phone_last4_invalid")])
async def test_inside_a_form_an_unplaceable_answer_gets_the_forms_hint(slot: str, response: str) -> None:
    from actions.fallback import ActionFallback

    dispatcher = CollectingDispatcher()
    await ActionFallback().run(dispatcher, tracker("DM123", "nlu_fallback", slots={"requested_slot": slot},
                                                   active_loop="order_verification_form"), {})
    assert [m["response"] for m in dispatcher.messages] == [response]


async def test_a_follow_up_that_asks_something_new_is_not_pulled_back_to_the_previous_answer() -> None:
    # "what perks do gold members have" then "how do i become one": the joint reading finds the perks article again
    # (the answer already given); the message alone confidently finds the upgrade article, which is the answer.
    dispatcher = CollectingDispatcher()
    slots = {"kb_last_question": "what perks do gold members have"}
    await knowledge.ActionAnswerPolicy().run(dispatcher, tracker("how do i become one", "ask_policy", slots=slots), {})
    assert dispatcher.messages[0]["kb"]["id"] == "membership-how-to-upgrade"


def test_one_decision_for_every_path() -> None:
    answer = knowledge.decide("how long does delivery to xinjiang take?", "en", None)
    assert (answer.action, answer.best.id) == (knowledge.ANSWER, "shipping-remote-regions")
    assert knowledge.decide("what's the weather in paris tomorrow", "en", None).action == knowledge.NOTHING


async def test_small_talk_the_nlu_could_not_place_is_not_answered_from_the_previous_question() -> None:
    from actions.fallback import ActionFallback

    t = tracker("thx bye", "nlu_fallback", slots={"kb_last_question": "can i return something i just dont like"})
    t.latest_message["intent_ranking"] = [{"name": "nlu_fallback", "confidence": 0.55},
                                          {"name": "thank", "confidence": 0.52},
                                          {"name": "goodbye", "confidence": 0.45}]
    dispatcher = CollectingDispatcher()
    await ActionFallback().run(dispatcher, t, {})
    assert not any(m.get("kb") for m in dispatcher.messages)
    assert [m["response"] for m in dispatcher.messages] == ["utter_rephrase"]


async def test_a_question_that_only_reads_as_one_by_a_little_still_gets_the_answer_and_the_offer(env: Env) -> None:
    # The form hook takes the classifier's own decision (0.5), not the handoff's stricter bar: the action stays one tap
    # away.
    text = "bought shoes too small, can i change them to a bigger size?"
    assert routing.FORM_QUESTION_THRESHOLD <= routing.question_probability(text) < 0.65
    dispatcher = CollectingDispatcher()
    await forms.ValidateReturnForm().run(dispatcher, tracker(text, "exchange_request", active_loop="return_form"),
                                         domain())
    assert dispatcher.messages[0]["kb"]["id"] == "exchanges-size-or-colour"
    assert dispatcher.messages[-1]["buttons"] == [{"title": "Start an exchange", "payload": "/exchange_request"}]


@pytest.mark.parametrize(("text", "language", "offer"), [
    ("how does swapping work if the item is faulty?", "en", "Start an exchange"),
    ("换货的话一般咋弄", "zh", "申请换货"),
])
async def test_surely_a_question_with_a_fairly_sure_knowledge_base_gets_did_you_mean_not_the_number_question(
        env: Env, text: str, language: str, offer: str) -> None:
    assert routing.question_probability(text) >= routing.FORM_QUESTION_THRESHOLD
    assert knowledge.decide(text, language, None).action == knowledge.SUGGEST
    dispatcher = CollectingDispatcher()
    events = await forms.ValidateReturnForm().run(
        dispatcher, tracker(text, "exchange_request", language, active_loop="return_form"), domain())
    assert dispatcher.messages[0]["response"] == "utter_kb_did_you_mean"
    assert any("exchanges" in b["payload"] for b in dispatcher.messages[0]["buttons"])
    assert dispatcher.messages[-1]["buttons"] == [{"title": offer, "payload": "/exchange_request"}]
    assert {"event": "slot", "timestamp": None, "name": "order_lookup_stopped", "value": True} in events


@pytest.mark.parametrize(("text", "language", "article"), [
    ("my parcel tracking has not moved for 5 days", "en", "shipping-tracking-not-updating"),
    ("物流五天没更新了", "zh", "shipping-tracking-not-updating"),
])
async def test_neither_surely_a_question_nor_a_request_gets_the_answer_and_the_form_goes_on(
        env: Env, text: str, language: str, article: str) -> None:
    """Between the two readings, with a confident answer: the article, then the form asks for the number."""
    assert routing.FORM_HEDGE_THRESHOLD <= routing.question_probability(text) < routing.FORM_QUESTION_THRESHOLD
    dispatcher = CollectingDispatcher()
    events = await forms.ValidateOrderVerificationForm().run(
        dispatcher, tracker(text, "delivery_delay", language, active_loop="order_verification_form"), domain())
    assert dispatcher.messages[0]["kb"]["id"] == article
    assert "buttons" not in dispatcher.messages[0] or not dispatcher.messages[0]["buttons"]  # no "did it help?"
    assert dispatcher.messages[-1]["response"] == "utter_offer_order_action"
    assert not dispatcher.messages[-1].get("buttons")
    assert not any(e.get("name") == "order_lookup_stopped" for e in events)
    assert not any(e.get("name") == "requested_slot" for e in events)  # not ended: Rasa's form asks for the number


@pytest.mark.parametrize(("text", "intent", "why"), [
    ("cancelled my order, refund when", "refund_status", "reads as a request"),
    ("where is my order?", "order_status", "its article is the lookup's own question"),
])
async def test_no_article_before_the_form(env: Env, text: str, intent: str, why: str) -> None:
    q = routing.question_probability(text)
    if why == "reads as a request":
        assert q < routing.FORM_HEDGE_THRESHOLD
    else:  # between the readings, but the article would only ask for the order number before the form does
        assert routing.FORM_HEDGE_THRESHOLD <= q < routing.FORM_QUESTION_THRESHOLD
        assert "orders-check-status" in routing.lookup_articles()
    dispatcher = CollectingDispatcher()
    await forms.ValidateOrderVerificationForm().run(
        dispatcher, tracker(text, intent, active_loop="order_verification_form"), domain())
    assert not dispatcher.messages


async def test_a_question_inside_an_order_form_is_answered_not_called_a_bad_number(env: Env) -> None:
    """The form waits for an order number; "what if it already shipped, can it still be cancelled?" (read by the NLU
    as cancel_order) gets its article, and the form asks for the number again instead of "not an order number"."""
    dispatcher = CollectingDispatcher()
    text = "what if it already shipped, can it still be cancelled?"
    result = await forms.ValidateOrderVerificationForm().validate_order_number(
        text, dispatcher, tracker(text, "cancel_order", slots={"requested_slot": "order_number"},
                                  active_loop="order_verification_form"), domain())
    assert dispatcher.messages and dispatcher.messages[0]["kb"]["id"] == "orders-cancel-after-shipping"
    assert not any(m.get("response") == "utter_order_number_invalid" for m in dispatcher.messages)
    assert result == {"order_number": None}  # asked again: the form goes on


async def test_a_bad_number_inside_an_order_form_is_still_a_bad_number(env: Env) -> None:
    dispatcher = CollectingDispatcher()
    await forms.ValidateOrderVerificationForm().validate_order_number(
        "DM12345", dispatcher, tracker("DM12345", "provide_order_number", slots={"requested_slot": "order_number"},
                                       active_loop="order_verification_form"), domain())
    assert not any(m.get("kb") for m in dispatcher.messages)
    assert [m.get("response") for m in dispatcher.messages] == ["utter_order_number_invalid"]


@pytest.mark.parametrize(("text", "intent", "topics", "frustration", "question"), [
    ("how do I reach a person?", "request_human", {}, 10, True),
    ("paid by bank card, refund timing to the card?", "ask_policy", {"sensitive_fraud": 0.61}, 10, True),  # n-grams
    ("my card was 盗刷 on your site", "ask_policy", {"sensitive_fraud": 0.9}, 10, False),  # a listed term: hand over
    ("my lawyer wants a person now", "request_human", {}, 10, False),
    ("paid by bank card, refund timing?", "ask_policy", {}, 90, False),  # high frustration
    ("paid by bank card, refund timing?", "ask_policy", {"sensitive_fraud": 0.6}, 90, False),
])
def test_which_escalations_a_calm_question_may_have_been_mistaken_for(
        text: str, intent: str, topics: dict[str, float], frustration: int, question: bool) -> None:
    """Through the real path: the escalation engine decides, the policy's record keeps its signals (the slot), the
    action reads them back - nothing injected between the engine and may_be_a_question."""
    from actions.handoff import may_be_a_question
    from bot.shared.frustration.decision import _variant, for_handoff
    from bot.shared.frustration.escalation import EscalationEngine, EscalationRequest

    engine = EscalationEngine.from_yaml()
    decision = engine.evaluate(EscalationRequest(text=text, frustration=frustration, topics=topics, intent=intent))
    assert decision.should_escalate
    record = {"by_tier": {"regular": _variant(decision, decision, "explicit_request", engine.config.priorities)}}
    handoff = for_handoff(record, None, intent, False)
    assert may_be_a_question(handoff["reason"], handoff["signals"]) is question


def test_a_sensitive_reading_of_the_n_grams_alone_needs_a_lower_question_bar_than_a_request_for_a_person() -> None:
    from actions.handoff import question_bars

    def question_bar(fired: list[str]) -> float:
        return question_bars(fired, {})[0]

    def calm_below(fired: list[str], signals: dict) -> float:
        return question_bars(fired, signals)[1]

    strict = routing.HANDOFF_QUESTION_THRESHOLD
    assert question_bar(["sensitive_fraud"]) == routing.SENSITIVE_QUESTION_THRESHOLD < strict
    assert question_bar(["explicit_request"]) == question_bar(["sensitive_fraud", "complaint"]) == strict
    # calm enough: under the escalation threshold for the n-grams' sensitive reading, under 50 for the others
    assert calm_below(["sensitive_fraud"], {"threshold": 70}) == 70
    assert calm_below(["complaint"], {"threshold": 70}) == calm_below(["sensitive_fraud", "explicit_request"], {}) == 50


def _after_a_knowledge_answer(first: str, text: str, intent: str, language: str, *, confidence: float = 0.6,
                              active_loop: str | None = None) -> Tracker:
    """``text`` (read by the NLU as ``intent``) right after the bot answered ``first`` from the knowledge base."""
    latest = {"text": text, "intent": {"name": intent, "confidence": confidence}, "entities": []}
    events: list[dict] = [
        {"event": "user", "text": first, "parse_data": {"text": first, "intent": {"name": "ask_policy"}}},
        {"event": "action", "name": "action_answer_policy"},
        {"event": "slot", "name": "kb_last_question", "value": first},
        {"event": "bot", "text": "..."},
        {"event": "user", "text": text, "parse_data": latest},
    ]
    return Tracker("conv-follow", {"language": language, "kb_last_question": first}, latest, events, False, None,
                   {"name": active_loop} if active_loop else {}, "action_listen")


async def test_a_short_follow_up_to_a_knowledge_answer_is_answered_not_sent_into_the_form(env: Env) -> None:
    """"我的已经发货了" right after the cancellation rule reads as a statement (a cancel_order request to the NLU);
    right after a knowledge answer it continues the question: the after-shipping rule, the action one tap away.
    The same words with no knowledge answer before them start the form."""
    text = "我的已经发货了"
    assert routing.question_probability(text) < routing.FORM_QUESTION_THRESHOLD
    after_answer = _after_a_knowledge_answer("还没发货的订单能取消吗", text, "cancel_order", "zh", confidence=0.9,
                                             active_loop="order_verification_form")
    assert routing.follows_a_kb_answer(after_answer)
    dispatcher = CollectingDispatcher()
    await forms.ValidateOrderVerificationForm().run(dispatcher, after_answer, domain())
    assert dispatcher.messages[0]["kb"]["id"] == "orders-cancel-after-shipping"
    assert dispatcher.messages[-1]["buttons"] == [{"title": "取消订单", "payload": "/cancel_order"}]

    cold = tracker(text, "cancel_order", language="zh", active_loop="order_verification_form")
    assert not routing.follows_a_kb_answer(cold)
    dispatcher = CollectingDispatcher()
    await forms.ValidateOrderVerificationForm().run(dispatcher, cold, domain())
    assert not any(m.get("kb") for m in dispatcher.messages)


def test_a_request_for_a_person_after_a_knowledge_answer_is_not_a_follow_up_question() -> None:
    text = "那帮我转人工吧"
    latest = {"text": text, "intent": {"name": "request_human", "confidence": 0.9}, "entities": []}
    events: list[dict] = [{"event": "user", "text": "q"}, {"event": "slot", "name": "kb_last_question", "value": "q"},
                          {"event": "user", "text": text, "parse_data": latest}]
    t = Tracker("conv-person", {"language": "zh"}, latest, events, False, None, {}, "action_listen")
    assert routing.follows_a_kb_answer(t) and routing.question_probability(text) < routing.HANDOFF_QUESTION_THRESHOLD
    assert routing.is_a_question(t, routing.HANDOFF_QUESTION_THRESHOLD) is False  # the handoff's reading
    assert routing.is_a_question(t, routing.FORM_QUESTION_THRESHOLD, follow_ups=True) is True  # the forms'


def test_where_is_my_order_is_a_request_for_the_form() -> None:
    # The most common request: it must start the lookup, whatever the knowledge base could say about it.
    assert routing.question_probability("where is my order?") < routing.FORM_QUESTION_THRESHOLD


def test_the_reader_weighs_wording_and_meaning() -> None:
    reader = routing.classifier()
    assert reader.dense is not None  # the knowledge base is up: its encoder gives the second half
    text = "is it possible to cancel before the parcel leaves"
    wording = float(reader.ngram.predict_proba(routing._normalise(text))[0])
    meaning = float(reader.dense.predict_proba(reader.encoder.encode_queries([text]))[0][1])
    assert reader.probability(text) == pytest.approx((wording + meaning) / 2)


def test_the_encoded_examples_are_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second start reads the examples' vectors from the cache next to the index instead of encoding ~3,000
    sentences again (about 30 s); a changed example set would have another cache file."""
    retriever = knowledge.get_retriever()
    texts = [ex.text for ex in routing.training_examples()]
    assert routing._embedding_cache(retriever.model_identity, texts).exists()
    assert routing._embedding_cache(retriever.model_identity, texts[:-1]) \
        != routing._embedding_cache(retriever.model_identity, texts)

    vector = retriever.query_encoder.encode_queries(["can a gift be sent back"])

    def no_encoding(*_: Any, **__: Any) -> Any:
        raise AssertionError("encoded again")

    monkeypatch.setattr(retriever.query_encoder, "encode_queries", no_encoding)
    model, _ = routing._dense_model(routing.training_examples())
    assert model.predict_proba(vector) == pytest.approx(routing.classifier().dense.predict_proba(vector))


def test_without_the_knowledge_base_the_reader_keeps_its_wording_half(monkeypatch: pytest.MonkeyPatch) -> None:
    def down() -> Any:
        raise knowledge.KnowledgeBaseDown("index missing")

    monkeypatch.setattr(knowledge, "get_retriever", down)
    routing.classifier.cache_clear()
    try:
        reader = routing.classifier()
        assert reader.dense is None
        text = "can a gift be sent back"
        assert reader.probability(text) == float(reader.ngram.predict_proba(routing._normalise(text))[0])
    finally:
        routing.classifier.cache_clear()


@pytest.mark.parametrize(("first", "text", "intent", "language", "article"), [
    ("还没发货的订单能取消吗", "那发货以后呢还能取消吗", "goodbye", "zh", "orders-cancel-after-shipping"),
    ("how long does delivery to beijing take", "and after that, how long to lhasa?", "greet", "en",
     "shipping-remote-regions"),
])
async def test_a_follow_up_question_the_nlu_heard_as_small_talk_is_answered(
        first: str, text: str, intent: str, language: str, article: str) -> None:
    assert routing.question_probability(text) >= routing.FOLLOW_UP_QUESTION_THRESHOLD
    dispatcher = CollectingDispatcher()
    await knowledge.ActionSmallTalk().run(dispatcher, _after_a_knowledge_answer(first, text, intent, language), {})
    assert dispatcher.messages[0]["kb"]["id"] == article


@pytest.mark.parametrize(("text", "intent", "response"), [
    ("many thx", "thank", "utter_youre_welcome"),
    ("谢谢啦", "thank", "utter_youre_welcome"),
    ("see you some other time", "goodbye", "utter_goodbye"),
    ("hello again", "greet", "utter_greet"),
])
async def test_small_talk_after_a_knowledge_answer_stays_small_talk(text: str, intent: str, response: str) -> None:
    """The knowledge base, read with the previous question, would have an answer for "many thx"; the reader's bar
    keeps it a thank-you."""
    dispatcher = CollectingDispatcher()
    first = "how long does delivery to beijing take"
    await knowledge.ActionSmallTalk().run(dispatcher, _after_a_knowledge_answer(first, text, intent, "en"), {})
    assert [m["response"] for m in dispatcher.messages] == [response]


async def test_a_three_character_chinese_follow_up_the_nlu_could_not_place_is_answered_in_context() -> None:
    from actions.fallback import ActionFallback

    t = tracker("拉萨呢", "nlu_fallback", language="zh", slots={"kb_last_question": "寄北京几天能到"})
    t.latest_message["intent_ranking"] = [{"name": "nlu_fallback", "confidence": 0.6}]
    dispatcher = CollectingDispatcher()
    await ActionFallback().run(dispatcher, t, {})
    assert dispatcher.messages[0]["kb"]["id"] == "shipping-remote-regions"
    t = tracker("ok", "nlu_fallback", language="zh", slots={"kb_last_question": "寄北京几天能到"})
    dispatcher = CollectingDispatcher()
    await ActionFallback().run(dispatcher, t, {})
    assert [m["response"] for m in dispatcher.messages] == ["utter_rephrase"]


@pytest.mark.parametrize(("text", "fired_by", "handed_over"), [
    # a sensitive topic the n-grams alone read, a calm question, a middling knowledge base: suggestions + a person
    ("My bank card was replaced after I lost my purse and a refund is still on its way to the old card. Where will "
     "the money end up?", {"sensitive_fraud": 0.61}, False),
    # the same words asking for a person: the request is honoured
    ("My bank card was replaced after I lost my purse and a refund is still on its way to the old card. Where will "
     "the money end up?", {}, True),
])
async def test_a_calm_question_read_as_sensitive_by_the_n_grams_alone_gets_suggestions_not_a_handoff(
        env: Env, text: str, fired_by: dict[str, float], handed_over: bool) -> None:
    from bot.shared.frustration.decision import DECISION_SLOT, _variant
    from bot.shared.frustration.escalation import EscalationEngine, EscalationRequest

    assert knowledge.decide(text, "en", None).action == knowledge.SUGGEST
    assert routing.question_probability(text) >= routing.SENSITIVE_SUGGEST_THRESHOLD
    intent = "ask_policy" if fired_by else "request_human"
    engine = EscalationEngine.from_yaml()
    decision = engine.evaluate(EscalationRequest(text=text, frustration=45, topics=fired_by, intent=intent))
    assert decision.should_escalate
    record = {"by_tier": {"regular": _variant(decision, decision, "explicit_request", engine.config.priorities)}}
    t = tracker(text, intent)
    t.events.append({"event": "slot", "name": DECISION_SLOT, "value": record})
    dispatcher = CollectingDispatcher()
    events = await ActionHandoffToHuman().run(dispatcher, t, domain())
    if handed_over:
        assert not any(m.get("response") == "utter_kb_did_you_mean" for m in dispatcher.messages)
        return
    assert [m.get("response") for m in dispatcher.messages][0] == "utter_kb_did_you_mean"
    assert "refunds-bank-card" in dispatcher.messages[0]["buttons"][0]["payload"]
    assert dispatcher.messages[-1]["buttons"] == [{"title": "Talk to a person", "payload": "/request_human"}]
    assert not any(e.get("name") == "handoff_active" for e in events)


def test_the_previous_question_picks_among_the_follow_ups_own_readings() -> None:
    """"and my bank card?" alone is first about paying by card; after a refund question its own second reading, the
    bank-card refund, is the answer (the joint reading ranks it first) even though the words alone score it lower."""
    previous, follow_up = "how many days until a refund reaches my alipay?", "and my bank card?"
    alone = [hit.id for hit, _ in knowledge._search(follow_up, "en")]
    assert alone[0] == "payment-card-unionpay" and "refunds-bank-card" in alone[1:]
    decision = knowledge.decide(follow_up, "en", previous)
    assert decision.action == knowledge.ANSWER and decision.best.id == "refunds-bank-card"
    assert knowledge.decide(follow_up, "en", None).best.id == "payment-card-unionpay"  # no previous question: as before


@pytest.mark.parametrize(("previous", "text", "language"), [
    ("how long does a refund to alipay take?", "how do i unblock a kitchen sink", "en"),
    ("how long does delivery to beijing take", "who won the football last night", "en"),
    ("退款到支付宝要几天", "帮我写首生日诗", "zh"),
])
async def test_an_unrelated_question_after_a_knowledge_answer_is_declined_not_answered_from_the_previous_one(
        previous: str, text: str, language: str) -> None:
    """Read together with a store question, any short message scores high for that question's runner-up article;
    the message itself must point at the article for the joint reading to count."""
    assert knowledge.decide(text, language, None).action == knowledge.NOTHING
    assert knowledge.decide(text, language, previous).action == knowledge.NOTHING
    dispatcher = CollectingDispatcher()
    await knowledge.ActionOutOfScope().run(dispatcher, tracker(text, "out_of_scope", language,
                                                               slots={"kb_last_question": previous}), {})
    assert [m["response"] for m in dispatcher.messages] == ["utter_out_of_scope"]


def test_a_longer_follow_up_is_still_read_with_the_previous_question() -> None:
    """Nine to twelve words still lean on the previous question ("...my gran lives out there")."""
    previous = "normal delivery to shanghai takes how long"
    text = "ok and what about tibet, my gran lives out there"
    assert 8 < len(text.split()) <= knowledge.FOLLOW_UP_MAX_WORDS
    decision = knowledge.decide(text, "en", previous)
    assert (decision.action, decision.best.id) == (knowledge.ANSWER, "shipping-remote-regions")
