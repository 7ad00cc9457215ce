"""Every Redis key of the action server, in one place: verification (``csbot:verify``) and knowledge-base feedback
(``csbot:kb``). The root prefix and the map of all namespaces: :mod:`bot.shared.redis_keys`."""
from __future__ import annotations

from bot.shared.redis_keys import PREFIX


def verification_record(conversation_id: str, order_number: str) -> str:
    """String: phone digits that verified ``order_number`` in ``conversation_id`` (expires when idle,
    ``VERIFICATION_IDLE_MINUTES``; every use renews it)."""
    return f"{PREFIX}:verify:ok:{conversation_id}:{order_number}"


def verified_customer(conversation_id: str) -> str:
    """String ``<customer id>:<membership tier>``: the customer this conversation proved to be (the order's customer
    or the website's signed token), expiring like the verification records."""
    return f"{PREFIX}:verify:customer:{conversation_id}"


def verification_failures_prefix() -> str:
    """Prefix of the moving-window counters of wrong verification answers per order number and per client, kept by
    the ``limits`` package (actions/verification_store.py)."""
    return f"{PREFIX}:verify:fail"


def kb_feedback() -> str:
    """Stream: every "did this help?" answer (article, helpful, language, question), read by ``actions.kb_report``."""
    return f"{PREFIX}:kb:feedback"


def kb_unanswered() -> str:
    """Stream: questions the knowledge base could not answer (question, language, best score), for editors."""
    return f"{PREFIX}:kb:unanswered"
