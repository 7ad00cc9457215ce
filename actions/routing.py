"""Where an answer comes from when the intent alone cannot say: the knowledge base, or the order flows.

"Can I send back a gift I got?" and "I want to send back order DM2026110512" share their words and often their
intent (``return_request``), but the first asks how things work and wants the rule, the second wants an action on
an order. Two pieces of evidence decide, neither of them a word list:

* a **question-vs-request** reader trained at first use from the project's own data (the knowledge base's example
  questions and the ``ask_policy`` examples are questions; the examples of the order intents, ``request_human`` and
  ``complaint`` are requests). It averages two learners that err differently: a character n-gram softmax
  regression (the same learner as the frustration model: wording, "咋", "?") and a logistic regression over the
  knowledge base's own sentence embeddings (meaning: "取消订单了钱啥时候退" asks about timing although its words are
  a cancellation's). Ranking questions above requests (ROC AUC), n-gram alone -> average: NLU tuning split
  0.988 -> 0.995, development answer sets' first turns 0.942 -> 0.963 (``python -m actions.routing --auc``);
* the **retrieval score**: the knowledge base must have a confident answer.

Used when an order form starts (answer, then offer the action as a button), for ``out_of_scope`` (a policy
question the NLU did not recognise), and before handing over a customer who only asked *about* the service.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
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
# - An order form (answer + the action as a one-tap button): the reader's own decision, 0.5. With the n-gram half
#   alone, 12 of 98 (en) and 13 of 104 (zh) of the split's order requests without an order number read so AND had a
#   KB answer, and got the article plus the button instead of the number question; the mean with the embedding half
#   misreads fewer of the split's requests at the same bar (en 31 of 155, zh 15 of 141, against 33 and 18). A lower
#   bar would also answer "where is my order?" (0.42): the most common request must start the lookup.
# - A handoff (calm customers only): 0.6; none of the 64 requests for a person or complaints would be answered
#   (one reads above it, "质量差得要命" 0.72, and the knowledge base has no answer for it; next: "you people are
#   hopeless" 0.59, "can i talk to a human" 0.52). With the n-gram reader alone this bar was 0.65.
FORM_QUESTION_THRESHOLD = 0.5
# - Between the two readings (0.3 <= question < 0.5), with a confident knowledge-base answer: both - the article, then
#   the form asks for the order number ("If you like, I can also do this for one of your orders: ..."). A misread
#   question still gets its answer; a misread request still gets its form, with some policy text before it. On the NLU
#   tuning split, 18 of 113 (en) and 26 of 119 (zh) order requests without an order number would get the article
#   first at 0.3 (37 and 51 at 0.2; 9 and 10 at 0.4): at 0.3 about one request in five gets the extra text.
FORM_HEDGE_THRESHOLD = 0.3
# - "Out of scope" for the NLU, but the knowledge base is fairly sure (middling): "did you mean" instead of the
#   decline when the message reads as a question, the reader's own decision. Of the 100 CLINC150 out-of-scope
#   validation questions (tests/nlu/clinc150_oos_val.json), 1 has a middling hit and reads so.
OUT_OF_SCOPE_QUESTION_THRESHOLD = 0.5
# - A follow-up right after a knowledge answer that the NLU read as small talk ("and after that?" as a greeting):
#   answered when it reads this surely as a question and the knowledge base is confident. The reader never saw small
#   talk: at 0.5, 7 of the split's 96 greetings, goodbyes and thanks would be answered with an article after a
#   knowledge answer ("many thx" 0.67, "see you some other time" 0.65); 0.7 is above all of them.
FOLLOW_UP_QUESTION_THRESHOLD = 0.7
HANDOFF_QUESTION_THRESHOLD = 0.6
# - A sensitive topic read by the learned classifier alone, no listed term, frustration under the escalation
#   threshold: 0.5. The n-gram classifiers read long calm English messages with money words as fraud reports (and
#   as mildly frustrated, 36-56); of the 201 sensitive turns that must escalate in the escalation sets
#   (tests/bot/shared/frustration/eval_*.yml), 35 are read by the classifier alone and 1 of them (a phishing text
#   with a KB answer) would be answered - with the person one tap away - against 9 of the 13 calm development
#   questions handed over as "fraud" (0.4: 2 of 201 and 12 of 13).
#   With the embedding half, 0 of the 201 would be answered.
# - The same, when the knowledge base is only fairly sure (long calm descriptions score just under the "confident"
#   bar): "did you mean" with the person one tap away from 0.6. At 0.5, 1 of the 201 must-escalate turns would get
#   the suggestions ("我直接拍个抖音视频...发出来", 0.52); at 0.6, none.
SENSITIVE_QUESTION_THRESHOLD = 0.5
SENSITIVE_SUGGEST_THRESHOLD = 0.6
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


def training_examples() -> list[LabelledMessage]:
    """The reader's labelled examples, from data/kb and data/nlu (the tuning and held-out splits are never read)."""
    nlu = sorted((ROOT / "data" / "nlu").glob("*.yml"))
    return (load_kb_questions([ROOT / "data" / "kb"], label=QUESTION)
            + load_nlu_background(nlu, ["ask_policy"], label=QUESTION, weight=1.0)
            + load_nlu_background(nlu, REQUEST_INTENTS, label=REQUEST, weight=1.0))


@dataclass
class QuestionReader:
    """P(question) = the mean of the n-gram model and the embedding model (the n-gram model alone when the knowledge
    base's encoder cannot be loaded: the reader still works, only less well)."""

    ngram: NgramClassifier
    dense: Any = None  # sklearn LogisticRegression over the query encoder's vectors
    encoder: Any = None  # kb_index.query_encoder.QueryEncoder

    def probability(self, text: str) -> float:
        p = float(self.ngram.predict_proba(_normalise(text))[0])
        if self.dense is None:
            return p
        vector = self.encoder.encode_queries([text[:1000]])
        return (p + float(self.dense.predict_proba(vector)[0][1])) / 2.0


def _embedding_cache(identity: str, texts: list[str]) -> Path:
    from kb_index.settings import get_settings

    digest = hashlib.sha256("\n".join([identity, *texts]).encode("utf-8")).hexdigest()[:16]
    return get_settings().index_path.parent / "question_reader" / f"examples-{digest}.npy"


def _dense_model(examples: list[LabelledMessage]) -> tuple[Any, Any]:
    """The embedding half: the examples encoded by the knowledge base's query encoder (about 30 s the first time,
    then read from a cache keyed by the model and the examples, next to the KB index), then a balanced logistic
    regression (C=3, chosen on the NLU tuning split)."""
    from sklearn.linear_model import LogisticRegression

    from actions.knowledge import get_retriever

    retriever = get_retriever()
    texts = [ex.text for ex in examples]
    cache = _embedding_cache(retriever.model_identity, texts)
    if cache.exists():
        vectors = np.load(cache)
    else:
        vectors = np.asarray(retriever.query_encoder.encode_queries(texts), dtype=np.float32)
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".tmp.npy")
        np.save(partial, vectors)
        partial.replace(cache)
    labels = np.array([ex.label == QUESTION for ex in examples])
    model = LogisticRegression(C=3.0, max_iter=2000, class_weight="balanced").fit(vectors, labels)
    return model, retriever.query_encoder


@lru_cache(maxsize=1)
def classifier() -> QuestionReader:
    """Trained at first use from data/kb and data/nlu (a few seconds; the action server does it at start-up);
    nothing is downloaded or pickled."""
    from actions.knowledge import KnowledgeBaseDown

    examples = training_examples()
    ngram = NgramClassifier.train(examples + _without_cue(examples), preprocess=_normalise,
                                  labels=(QUESTION, REQUEST))
    try:
        dense, encoder = _dense_model(examples)
    except KnowledgeBaseDown as exc:
        logger.warning("question reader without the embedding half (knowledge base unavailable: %s)", exc)
        return QuestionReader(ngram)
    logger.info("question-vs-request reader trained on %d examples", len(examples))
    return QuestionReader(ngram, dense, encoder)


LOOKUP_TAG = "lookup"  # an article tagged so in data/kb answers with the order lookup's own question
_lookup_articles: dict[str, frozenset[str]] = {}  # index build id -> ids of its articles tagged LOOKUP_TAG


def lookup_articles() -> frozenset[str]:
    """Articles whose answer is the order form's own question ("Please give me your order number ..."): before
    the form asks, they would only say it twice. Read from the articles of the loaded index build."""
    from actions.knowledge import get_retriever
    from kb_index.content import load_articles

    retriever = get_retriever()
    build = str(retriever.fingerprint.get("build_id", ""))
    if build not in _lookup_articles:
        _lookup_articles.clear()
        _lookup_articles[build] = frozenset(article.id for article in load_articles(retriever.settings.data_path)
                                            if LOOKUP_TAG in article.tags)
    return _lookup_articles[build]


def question_probability(text: str) -> float:
    """P(the message asks how things work rather than for an action on the customer's own order)."""
    return classifier().probability(text)


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
    ask_feedback: bool = True, or_suggest: bool = False, unless: Collection[str] = (),
) -> list[dict[str, Any]] | None:
    """Answer from the knowledge base when it has an answer (``knowledge.decide``); None (nothing said) otherwise. With
    ``offer_intent``, the answer is followed by the action the customer might want next, as a button. With
    ``or_suggest``, a middling knowledge base gives "did you mean" (and the offer) instead of nothing. An answer
    from an article in ``unless`` is not given (None)."""
    from actions.knowledge import (
        ANSWER,
        SUGGEST,
        KnowledgeBaseDown,
        _give_answer,
        customer_language,
        decide_for,
        did_you_mean,
    )

    language = customer_language(tracker)
    text = _latest_text(tracker)
    try:
        decision = await decide_for(tracker, text)
    except KnowledgeBaseDown:
        return None
    offer = OFFERS.get(offer_intent or "")
    if decision.action == ANSWER and decision.best.id not in unless:
        hit = decision.best
        events = _give_answer(dispatcher, hit.id, hit.title, hit.answer, hit.score, language, text,
                              ask_feedback=ask_feedback and offer is None)
    elif decision.action == SUGGEST and or_suggest:
        events = did_you_mean(dispatcher, decision, text)
    else:
        return None
    if offer:
        dispatcher.utter_message(response="utter_offer_order_action",
                                 buttons=[{"title": offer[ZH if language == ZH else "en"],
                                           "payload": f"/{offer_intent}"}])
    return events


def _first_turns(paths: list[Path]) -> list[tuple[str, bool]]:
    """(text, is a question) of the answer sets' first turns: an expected article = question, an expected order
    form = request (other expectations are left out)."""
    import yaml

    out = []
    for path in paths:
        for conversation in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("conversations") or []:
            first = (conversation.get("turns") or [{}])[0]
            expect = first.get("expect") or {}
            if "answer" in expect or "form" in expect:
                out.append((str(first["user"]), "answer" in expect))
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m actions.routing --train``, or ``--auc [ANSWER_SET ...]``: how well each half of the reader and
    their mean rank questions above requests (ROC AUC) on the NLU tuning split (tests/nlu/tuning_*.yml) and on the
    first turns of the given answer sets (tests/answers/*.yml; never the final sets while choosing anything)."""
    import argparse

    from sklearn.metrics import roc_auc_score

    parser = argparse.ArgumentParser(description=main.__doc__)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--auc", action="store_true", help="print the ROC AUC of each half and of their mean")
    what.add_argument("--train", action="store_true",
                      help="train once now, filling the embedding cache (scripts/setup.sh does it after the index "
                           "build, so the action server's first start does not spend ~30 s encoding)")
    parser.add_argument("answer_sets", nargs="*", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.train:
        print(f"question reader: {'n-grams + embeddings' if classifier().dense is not None else 'n-grams only'}")
        return
    tuning = sorted((ROOT / "tests" / "nlu").glob("tuning_*.yml"))
    sets = {"NLU tuning split": [(ex.text, ex.label == QUESTION) for ex in
                                 load_nlu_background(tuning, ["ask_policy"], label=QUESTION)
                                 + load_nlu_background(tuning, REQUEST_INTENTS, label=REQUEST)]}
    if args.answer_sets:
        sets["answer sets' first turns"] = _first_turns(args.answer_sets)
    reader = classifier()
    for name, rows in sets.items():
        rows = [(t, q) for t, q in rows if not any(m.entity == ORDER_NUMBER for m in find_identifiers(t))]
        truth = [q for _, q in rows]
        ngram = [float(reader.ngram.predict_proba(_normalise(t))[0]) for t, _ in rows]
        both = [reader.probability(t) for t, _ in rows]
        print(f"{name} (n={len(rows)}, {sum(truth)} questions): ROC AUC n-gram {roc_auc_score(truth, ngram):.3f}, "
              f"n-gram + embedding {roc_auc_score(truth, both):.3f}")


if __name__ == "__main__":
    main()
