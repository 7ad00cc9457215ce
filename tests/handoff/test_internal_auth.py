"""Issue 12 (low): /internal/* checks the token before it reads the body; an invalid language is a clear 422."""
from __future__ import annotations

import pytest

from conversations import keys

TOKEN = "test-internal-token"  # noqa: S105 - the desk fixture's token (tests/handoff/conftest.py)

BAD_BODIES = [
    b"{not json at all",
    b'{"conversation_id": "../../etc", "priority": "high", "language": "klingon"}',
    b"[]",
    b"",
]


@pytest.mark.parametrize("body", BAD_BODIES)
@pytest.mark.parametrize("token", [None, "guess", TOKEN + "x"])
async def test_no_or_wrong_token_gets_401_whatever_the_body(desk, body: bytes, token: str | None) -> None:
    headers = {"content-type": "application/json", **({"X-Internal-Token": token} if token else {})}
    r = await desk.http.post("/internal/handoffs", content=body, headers=headers)
    assert r.status_code == 401, r.text
    # Nothing about the schema leaks to an unauthenticated caller.
    assert "language" not in r.text and "priority" not in r.text and "conversation_id" not in r.text


async def test_with_the_token_a_malformed_body_is_a_422(desk) -> None:
    r = await desk.http.post("/internal/handoffs", content=b"{not json",
                             headers={"content-type": "application/json", "X-Internal-Token": TOKEN})
    assert r.status_code == 422


async def test_an_invalid_language_is_rejected_with_a_clear_422(desk) -> None:
    cid = (await desk.say("hello"))["conversation_id"]
    r = await desk.handoff(cid, language="fr")
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("Invalid request: language:") and "'zh'" in detail and "'en'" in detail
    assert await desk.redis.get(keys.owner(cid)) is None
    assert (await desk.handoff(cid, language="zh")).status_code == 200
