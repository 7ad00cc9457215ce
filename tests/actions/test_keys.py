"""The action server's Redis keys (actions/keys.py) keep the layout already stored in Redis."""
from __future__ import annotations

from actions import keys
from actions.kb_feedback import FEEDBACK_STREAM, UNANSWERED_STREAM
from actions.verification_store import customer_key, record_key


def test_action_server_keys_keep_their_stored_layout() -> None:
    assert keys.verification_record("c1", "DM2026110512") == "csbot:verify:ok:c1:DM2026110512"
    assert keys.verified_customer("c1") == "csbot:verify:customer:c1"
    assert keys.verification_failures_prefix() == "csbot:verify:fail"
    assert keys.kb_feedback() == FEEDBACK_STREAM == "csbot:kb:feedback"
    assert keys.kb_unanswered() == UNANSWERED_STREAM == "csbot:kb:unanswered"
    assert record_key is keys.verification_record and customer_key is keys.verified_customer
