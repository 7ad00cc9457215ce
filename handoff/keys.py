"""Every Redis key the gateway uses, in one place. Prefix ``csbot:`` so the database can be shared."""
from __future__ import annotations

PREFIX = "csbot"


def conversation(conversation_id: str) -> str:
    """Hash: channel, created_at, ui_lang of one conversation."""
    return f"{PREFIX}:conv:{conversation_id}"


def messages(conversation_id: str) -> str:
    """Stream: every message of the conversation (customer, bot, agent, system) in order."""
    return f"{PREFIX}:conv:{conversation_id}:messages"


def owner(conversation_id: str) -> str:
    """String: who answers this conversation, ``bot`` (default when missing) or ``agent:<id>``."""
    return f"{PREFIX}:conv:{conversation_id}:owner"


def dedupe(conversation_id: str, client_message_id: str) -> str:
    """String: the reply to a client message id, so a retried request is answered once."""
    return f"{PREFIX}:conv:{conversation_id}:dedupe:{client_message_id}"
