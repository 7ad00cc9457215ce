"""Issue 12, item 6: the outbound handoff webhook is signed (HMAC-SHA256 over timestamp + body, replay window) and
carries an opaque reference instead of the customer's conversation id (their chat credential)."""
from __future__ import annotations

import json
import time

import httpx
import pytest

from channels.app import create_app
from conversations import keys
from conversations.settings import GatewaySettings
from handoff.webhook import (
    SIGNATURE_HEADER,
    WebhookConfigError,
    WebhookPusher,
    conversation_ref,
    sign,
    verify_signature,
)

SECRET = "whsec-test-0123456789abcdef"  # noqa: S105 - test secret
BODY = b'{"handoff_id":"h1","summary":{"text":"refund please"}}'


def test_a_valid_signature_verifies() -> None:
    header = sign(SECRET, BODY)
    assert verify_signature(SECRET, header, BODY)
    assert verify_signature(SECRET, header, BODY.decode())


def test_tampered_body_wrong_secret_and_garbage_headers_are_rejected() -> None:
    header = sign(SECRET, BODY)
    assert not verify_signature(SECRET, header, BODY.replace(b"refund", b"resend"))
    assert not verify_signature("another-secret-0123456789", header, BODY)
    t = header.split(",")[0]
    assert not verify_signature(SECRET, f"{t},v1={'0' * 64}", BODY)
    assert not verify_signature(SECRET, header.split(",")[1], BODY)  # no timestamp
    assert not verify_signature(SECRET, t, BODY)  # no signature
    assert not verify_signature(SECRET, None, BODY)
    assert not verify_signature(SECRET, "nonsense", BODY)
    assert not verify_signature("", header, BODY)
    # The timestamp is signed too: moving it forward to dodge the replay window breaks the signature.
    forged_t = int(time.time()) + 1
    assert not verify_signature(SECRET, f"t={forged_t},{header.split(',')[1]}", BODY)


def test_replayed_old_and_future_timestamps_are_rejected() -> None:
    now = time.time()
    old = sign(SECRET, BODY, timestamp=int(now) - 301)
    assert not verify_signature(SECRET, old, BODY, tolerance_s=300, now=now)
    assert verify_signature(SECRET, old, BODY, tolerance_s=600, now=now)
    future = sign(SECRET, BODY, timestamp=int(now) + 301)
    assert not verify_signature(SECRET, future, BODY, tolerance_s=300, now=now)


def test_rotated_secrets_any_v1_matches() -> None:
    new = sign(SECRET, BODY, timestamp=1_800_000_000)
    old = sign("previous-secret-0123456789", BODY, timestamp=1_800_000_000)
    header = f"{new},v1={old.split('v1=')[1]}"
    assert verify_signature(SECRET, header, BODY, now=1_800_000_000)
    assert verify_signature("previous-secret-0123456789", header, BODY, now=1_800_000_000)


async def test_a_webhook_url_without_a_secret_refuses_to_start(redis_url: str) -> None:
    with pytest.raises(WebhookConfigError):
        WebhookPusher(None, "http://helpdesk.test/hook", 3, 0, 1)  # type: ignore[arg-type]
    with pytest.raises(WebhookConfigError):
        WebhookPusher(None, "http://helpdesk.test/hook", 3, 0, 1, secret=SECRET[:8])  # type: ignore[arg-type]
    assert not WebhookPusher(None, "", 3, 0, 1).enabled  # type: ignore[arg-type]  # no URL: off, no secret needed
    app = create_app(GatewaySettings(redis_url=redis_url, handoff_webhook_url="http://helpdesk.test/hook"))
    with pytest.raises(WebhookConfigError):
        async with app.router.lifespan_context(app):
            pass


async def test_delivered_package_is_signed_and_holds_a_reference_not_the_conversation_id(desk) -> None:
    received = []

    def helpdesk(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    pusher = WebhookPusher(desk.redis, "http://helpdesk.test/hook", attempts=3, backoff_s=0, timeout_s=1,
                           http=httpx.AsyncClient(transport=httpx.MockTransport(helpdesk)), secret=SECRET)
    desk.app.state.webhook = pusher
    await desk.agent("alice")
    customer = {"id": "cust-5", "tier": "regular", "verified": True}
    first = (await desk.say("my parcel is broken"))["conversation_id"]
    await desk.handoff(first, customer=customer)
    cid = (await desk.say("where is my order"))["conversation_id"]
    hid = (await desk.handoff(cid, customer=customer)).json()["handoff_id"]
    while await desk.redis.xlen(keys.webhook_outbox()):
        await pusher.run_once()
    request = next(r for r in received if json.loads(r.content)["handoff_id"] == hid)
    raw = request.content
    assert verify_signature(SECRET, request.headers[SIGNATURE_HEADER], raw)
    assert not verify_signature(SECRET, request.headers[SIGNATURE_HEADER], raw + b" ")
    assert request.headers["X-Csbot-Event"] == "handoff.created"
    package = json.loads(raw)
    # The conversation id (a chat credential: whoever has it can read and write the chat) appears nowhere.
    assert cid.encode() not in raw and first.encode() not in raw
    assert package["conversation_ref"] == conversation_ref(SECRET, cid) != cid
    assert package["earlier_conversations"][0]["conversation_ref"] == conversation_ref(SECRET, first)
    assert "conversation_id" not in package["earlier_conversations"][0]
    # Without the secret, the id cannot be turned into the reference (no plain hash of the id).
    assert conversation_ref("another-secret-0123456789", cid) != package["conversation_ref"]
    await pusher.close()
