"""Every Redis key the gateway and the desk use, in one place. The root prefix and the map of all namespaces:
:mod:`bot.shared.redis_keys`."""
from __future__ import annotations

from bot.shared.redis_keys import PREFIX


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


def conversation_handoff(conversation_id: str) -> str:
    """String: id of the conversation's open handoff (present only while one is open: idempotency anchor)."""
    return f"{PREFIX}:conv:{conversation_id}:handoff"


def notice(conversation_id: str, owner_value: str) -> str:
    """String flag: the customer already got the one "an agent will answer" notice for this owner phase."""
    return f"{PREFIX}:conv:{conversation_id}:notice:{owner_value}"


def rate(conversation_id: str, window: int) -> str:
    """Counter: customer messages of one conversation in one rate-limit window."""
    return f"{PREFIX}:conv:{conversation_id}:rate:{window}"


def rate_notice(conversation_id: str, window: int) -> str:
    """String flag: the polite "slow down" message was already sent in this window."""
    return f"{PREFIX}:conv:{conversation_id}:rate_notice:{window}"


def offered(conversation_id: str) -> str:
    """Hash: button payload -> "<unix time>|<title>" of buttons shown in this conversation (only these payloads
    may reach Rasa as commands; see channels/webchat.py)."""
    return f"{PREFIX}:conv:{conversation_id}:offered"


def first_message(device_hash: str, client_message_id: str) -> str:
    """String: the conversation a browser's first message (sent without a conversation id) started, so a retry of
    that message continues it instead of starting a second one."""
    return f"{PREFIX}:device:{device_hash[:32]}:first:{client_message_id}"


def rate_limit_prefix() -> str:
    """Prefix of the per-client moving-window counters kept by the ``limits`` package (conversations/protect.py)."""
    return f"{PREFIX}:rl"


def csat_pending(conversation_id: str) -> str:
    """String: handoff id whose CSAT question is waiting for the customer's stars."""
    return f"{PREFIX}:conv:{conversation_id}:csat"


def notes(conversation_id: str) -> str:
    """Stream: the desk's internal notes on a conversation (agent id and name, text, ts); never shown to the
    customer. Expires ``HANDOFF_RETENTION_S`` after the last note (handoff/notes.py)."""
    return f"{PREFIX}:conv:{conversation_id}:notes"


def signals(conversation_id: str) -> str:
    """Stream (capped, short expiry): live signals for a web chat customer's page that are not messages - the agent
    is typing (``type=typing``, name, until) and the agent has read up to a message (``type=read``, upto); read by
    the page's event stream (channels/webchat.py), written by the desk (handoff/presence.py)."""
    return f"{PREFIX}:conv:{conversation_id}:signals"


def read_upto(conversation_id: str) -> str:
    """String: stream id of the newest customer message the owning agent has had open in the console."""
    return f"{PREFIX}:conv:{conversation_id}:read_upto"


def typing_gate(conversation_id: str) -> str:
    """String flag (PX): a typing signal of this conversation was written just now (one per throttle window)."""
    return f"{PREFIX}:conv:{conversation_id}:typing_gate"


def macros_shared() -> str:
    """Hash: macro id -> JSON of a shared macro (reply template) written by a supervisor (handoff/macros.py)."""
    return f"{PREFIX}:desk:macros:shared"


def macros_personal(agent_id: str) -> str:
    """Hash: macro id -> JSON of one agent's personal macros (only that agent reads or changes them)."""
    return f"{PREFIX}:agent:{agent_id}:macros"


def order_action(handoff_id: str, digest: str) -> str:
    """String: an order action an agent asked for in one handoff (handoff/order_desk.py), by a hash of what it
    changes: ``pending`` while it runs, then the service's result (JSON), so a second click gets the first result."""
    return f"{PREFIX}:handoff:{handoff_id}:order_action:{digest}"


def handoff(handoff_id: str) -> str:
    """Hash: one handoff (status, reason, priority, agent, timestamps, context package JSON)."""
    return f"{PREFIX}:handoff:{handoff_id}"


def queue() -> str:
    """Sorted set: queued handoff ids, score = effective priority * 1e13 + created ms (lowest first)."""
    return f"{PREFIX}:queue"


def pickup_waits() -> str:
    """List: recent pickup waits in seconds (newest first), for the expected-wait estimate."""
    return f"{PREFIX}:stats:pickup_waits"


def search_doc(handoff_id: str) -> str:
    """Hash: the masked search document of one past conversation (handoff/cases.py), expiring with the handoff."""
    return f"{PREFIX}:desk:search:doc:{handoff_id}"


def search_recent() -> str:
    """Sorted set: handoff ids with a search document, by the handoff's creation time."""
    return f"{PREFIX}:desk:search:recent"


def search_by_order(order_number: str) -> str:
    """Sorted set: handoff ids whose conversation named this order number, by creation time."""
    return f"{PREFIX}:desk:search:order:{order_number}"


def search_cursor() -> str:
    """String: the last desk event (stream id) the search index has taken in."""
    return f"{PREFIX}:desk:search:cursor"


def case(case_id: str) -> str:
    """String: JSON of one model case of the case library (a frozen, masked copy; no expiry)."""
    return f"{PREFIX}:desk:case:{case_id}"


def cases() -> str:
    """Sorted set: model case ids by the time they were marked."""
    return f"{PREFIX}:desk:cases"


def handoffs_by_customer(customer_id: str) -> str:
    """Sorted set: handoff ids of one customer by creation time (earlier conversations in the context)."""
    return f"{PREFIX}:customer:{customer_id}:handoffs"


def tickets() -> str:
    """Sorted set: open ticket ids by creation time."""
    return f"{PREFIX}:tickets"


def ticket(ticket_id: str) -> str:
    """Hash: one ticket (handoff id, conversation id, next contact time, status)."""
    return f"{PREFIX}:ticket:{ticket_id}"


def ticket_counter(day: str) -> str:
    """Counter: tickets created on one day (ticket ids are T<yyyymmdd>-<n>)."""
    return f"{PREFIX}:ticket_counter:{day}"


def sla_alerted(handoff_id: str) -> str:
    """String flag: the pickup SLA alert of this handoff was raised (once, even with several gateways)."""
    return f"{PREFIX}:sla_alerted:{handoff_id}"


def complaint_escalated(handoff_id: str) -> str:
    """String flag: the 48-hour escalation of this unanswered complaint was raised (handoff/complaints.py; once,
    even with several gateways)."""
    return f"{PREFIX}:complaint_escalated:{handoff_id}"


def alerts() -> str:
    """Sorted set: open alert ids by time (visible to supervisors)."""
    return f"{PREFIX}:alerts"


def alert(alert_id: str) -> str:
    """Hash: one alert (kind, handoff id, conversation id, raised at)."""
    return f"{PREFIX}:alert:{alert_id}"


def alert_acknowledged(alert_id: str) -> str:
    """String with TTL: a supervisor acknowledged this complaint-stream alert (handoff/alerts.py)."""
    return f"{PREFIX}:alert_ack:{alert_id}"


def desk_events() -> str:
    """Stream: queue and assignment changes pushed live to every agent console."""
    return f"{PREFIX}:desk:events"


def audit() -> str:
    """Stream: every agent and supervisor action (who, what, which conversation, when)."""
    return f"{PREFIX}:audit"


def agent(agent_id: str) -> str:
    """Hash: one agent account (username, role, password hash, concurrency limit)."""
    return f"{PREFIX}:agent:{agent_id}"


def agent_usernames() -> str:
    """Hash: username -> agent id."""
    return f"{PREFIX}:agents:by_username"


def agent_active(agent_id: str) -> str:
    """Set: conversation ids an agent owns now (its size is checked against the concurrency limit)."""
    return f"{PREFIX}:agent:{agent_id}:active"


def agents_online() -> str:
    """Sorted set: agent id -> last time seen (requests and live connections)."""
    return f"{PREFIX}:agents:online"


def session(token_hash: str) -> str:
    """String: agent id of a login session, keyed by the SHA-256 of the token (tokens never stored)."""
    return f"{PREFIX}:session:{token_hash}"


def login_lock(scope: str, ref: str) -> str:
    """String (EX HANDOFF_LOGIN_LOCK_S): agent logins for this account or client address are refused (429).
    ``scope`` is ``account`` or ``ip``; ``ref`` a keyed hash of the username / address (handoff/login_guard.py)."""
    return f"{PREFIX}:login:lock:{scope}:{ref}"


def login_inflight(scope: str, ref: str) -> str:
    """Counter (EX 120 s): agent logins of this account / address whose password is being checked right now;
    reserved against the failure budget so concurrent guesses cannot overshoot it."""
    return f"{PREFIX}:login:inflight:{scope}:{ref}"


def agent_dedupe(conversation_id: str, client_message_id: str) -> str:
    """String: stream id of an agent message already stored under this client id (retries are not doubled)."""
    return f"{PREFIX}:conv:{conversation_id}:agent_dedupe:{client_message_id}"


def webhook_outbox() -> str:
    """Stream: context packages waiting to be pushed to the external helpdesk (survives restarts)."""
    return f"{PREFIX}:webhook:outbox"


def webhook_lock(entry_id: str) -> str:
    """String flag (EX 30 s): one gateway process is delivering this outbox entry."""
    return f"{PREFIX}:webhook:outbox:lock:{entry_id}"


def undelivered_handoffs() -> str:
    """Stream: handoff requests the action server could not deliver to the desk (written by actions/handoff.py),
    re-sent by the gateways through the consumer group in handoff/undelivered.py; entries are deleted once done."""
    return f"{PREFIX}:handoffs:undelivered"


# ---------------------------------------------------------------------------------------------- messaging channels
# (channels/: the adapters, the relay and the outbox; see docs/CHANNELS.md)

def channel_user(platform: str, user_ref: str) -> str:
    """String: the conversation id of one platform user (Telegram chat, WhatsApp number, WeChat OpenID); expires
    with the conversation, so a user who comes back after that starts a new one."""
    return f"{PREFIX}:chan:{platform}:user:{user_ref}"


def channel_route(conversation_id: str) -> str:
    """Hash: how to reach the customer of a messaging-channel conversation (platform, address, last inbound time)
    and the relay's delivery state (``cursor``: last stream id handed to the outbox, ``sent_upto``: last id the
    platform accepted)."""
    return f"{PREFIX}:conv:{conversation_id}:route"


def channel_hold(conversation_id: str) -> str:
    """String (PX = answer lease): an inbound message of this conversation is being answered; the relay leaves the
    conversation to that turn, which hands its replies to the outbox (or answers passively) itself."""
    return f"{PREFIX}:conv:{conversation_id}:hold"


def channel_active() -> str:
    """Sorted set: conversation id -> last activity, of conversations on asynchronous channels (the relay watches
    their message streams for agent and system messages)."""
    return f"{PREFIX}:chan:active"


def outbox(platform: str) -> str:
    """Stream (consumer group ``outbox``): batches of messages waiting to be sent to a platform's customers."""
    return f"{PREFIX}:chan:outbox:{platform}"


def outbox_progress(platform: str, entry_id: str) -> str:
    """Hash: ``sent`` platform calls of one outbox batch already accepted (a retry skips them), ``attempts``."""
    return f"{PREFIX}:chan:outbox:{platform}:progress:{entry_id}"


def outbox_dead() -> str:
    """Stream: outbox batches given up on (platform refused them, retries exhausted, outside the WhatsApp window);
    supervisors read it (platform, conversation, error, messages)."""
    return f"{PREFIX}:chan:outbox:dead"


def channel_token(platform: str) -> str:
    """String (EX a little under the token's lifetime): a platform access token shared by all gateways (WeChat)."""
    return f"{PREFIX}:chan:{platform}:access_token"


def channel_signature(platform: str, timestamp: str, nonce: str) -> str:
    """String (EX the replay window): the SHA-256 of the body first seen with this signed timestamp and nonce. A
    platform's retry repeats it; another body under the same signature is a forgery (WeChat's plaintext signature does
    not cover the body)."""
    return f"{PREFIX}:chan:{platform}:sig:{timestamp}:{nonce}"


def channel_rate_limit_prefix() -> str:
    """Prefix of the per-platform outbound moving windows (``limits``), one per platform."""
    return f"{PREFIX}:chan:rl"


def channel_sync_cursor(platform: str, account: str) -> str:
    """String: the platform's cursor of the messages already fetched for one account (WeCom kf/sync_msg next_cursor
    per open_kfid), so a restart continues where the last sync stopped."""
    return f"{PREFIX}:chan:{platform}:cursor:{account}"


def channel_sync_lock(platform: str, account: str) -> str:
    """String (PX): one gateway is fetching this account's messages; the others leave it (it fetches again after)."""
    return f"{PREFIX}:chan:{platform}:sync_lock:{account}"


def channel_media(media_id: str) -> str:
    """Hash (EX = conversation TTL): a photo a customer sent on a messaging channel (content_type, data, conversation
    id), shown to agents by GET /api/channels/media/<id>."""
    return f"{PREFIX}:chan:media:{media_id}"


def kb_feedback() -> str:
    """Stream: every "did this help?" answer (conversation, article, helpful 1/0, language, question, ts), written by
    the action server (actions/kb_feedback.py), read by ``actions.kb_report`` and the workbench inbox."""
    return f"{PREFIX}:kb:feedback"


def kb_unanswered() -> str:
    """Stream: questions the knowledge base could not answer (question, language, best score), written by the action
    server, read by ``actions.kb_report`` and the workbench inbox."""
    return f"{PREFIX}:kb:unanswered"


def kb_chosen() -> str:
    """Stream: a "did you mean" suggestion the customer picked (the question that got the suggestions, the article
    chosen), written by the action server, read by the workbench inbox."""
    return f"{PREFIX}:kb:chosen"


def kb_fallback() -> str:
    """Stream: customer messages the NLU could not place (``nlu_fallback``: text, language, the best intent guess and
    what the knowledge base did with it), written by the action server's fallback, read by the workbench inbox."""
    return f"{PREFIX}:kb:fallback"


def release_lock() -> str:
    """String (EX, refreshed while held): one retrain or one deploy/rollback of the bot's model and knowledge-base
    index runs at a time across gateways (workbench/releases.py); the value names the holder."""
    return f"{PREFIX}:kb:release_lock"


def rasa_draining() -> str:
    """String (EX) JSON list of Rasa worker URLs loading a new model during a deploy (workbench/releases.py): every
    gateway sends new messages to the other workers meanwhile (conversations/rasa_client.py follow_rollout)."""
    return f"{PREFIX}:kb:rasa_draining"


def canary() -> str:
    """String (JSON {release, share, started_at}, no expiry): the candidate release running as a canary - a share of
    new conversations is answered by the canary Rasa worker (conversations/canary.py); written by the workbench
    (workbench/releases.py), followed by every gateway (conversations/rasa_client.py follow_rollout)."""
    return f"{PREFIX}:kb:canary"


# ---------------------------------------------------------------------------------------------- one customer
# (conversations/customers.py: one customer across channels; docs/CHANNELS.md "One customer across channels")

def conversation_customer(conversation_id: str) -> str:
    """String JSON ``{"id", "tier", "via"}``: the customer this conversation is known to be. ``via`` = ``verified``
    (written by the action server when the conversation verified an order or carried the store's signed token) or
    ``linked`` (written by the gateway: the conversation's channel identity was linked by an earlier verification).
    Server-side only; expires with the conversation."""
    return f"{PREFIX}:conv:{conversation_id}:customer"


def customer_link(identity_ref: str) -> str:
    """String JSON ``{"id", "tier", "at"}``: the customer a channel identity (Telegram chat, WhatsApp number, WeChat
    OpenID, web browser) proved to be; ``identity_ref`` is a keyed hash of ``<channel>:<platform user>`` (never the
    number itself). Expires ``CUSTOMER_LINK_TTL_S`` after the last verification."""
    return f"{PREFIX}:customer:link:{identity_ref}"


def customer_identities(customer_id: str) -> str:
    """Hash: identity ref -> JSON ``{"channel", "label" (masked), "linked_at"}`` of one customer's linked channel
    identities; expires ``CUSTOMER_LINK_TTL_S`` after the last link."""
    return f"{PREFIX}:customer:{customer_id}:identities"


def customer_conversations(customer_id: str) -> str:
    """Sorted set: conversation id -> last time it was known to be this customer's, on any channel (earlier
    conversations in the handoff context); entries older than the conversations' TTL are pruned, the key expires
    with the newest."""
    return f"{PREFIX}:customer:{customer_id}:conversations"
