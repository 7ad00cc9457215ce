"""Every Redis key of the action server, in one place: verification (``csbot:verify``) and knowledge-base feedback
(``csbot:kb``: defined in :mod:`conversations.keys`, because the workbench inbox in the gateway reads those streams;
re-exported here). The root prefix and the map of all namespaces: :mod:`bot.shared.redis_keys`."""
from __future__ import annotations

from bot.shared.redis_keys import PREFIX
from conversations.keys import kb_chosen, kb_fallback, kb_feedback, kb_unanswered

__all__ = ["kb_chosen", "kb_fallback", "kb_feedback", "kb_unanswered", "verification_failures_prefix",
           "verification_record", "verified_customer"]


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

