"""RasaClient with several workers: each conversation sticks to one worker, conversations spread over all."""
from __future__ import annotations

import pytest

from conversations.rasa_client import RasaClient


async def test_conversations_stick_to_one_worker_and_spread_over_all() -> None:
    client = RasaClient("http://127.0.0.1:5005, http://127.0.0.1:5006/")
    try:
        assert client.workers == 2
        ids = [f"conversation-{i}" for i in range(200)]
        chosen = [client._for(cid) for cid in ids]
        assert chosen == [client._for(cid) for cid in ids]  # stable
        share = sum(worker is client._workers[0] for worker in chosen) / len(ids)
        assert 0.35 < share < 0.65
        assert {str(w.base_url) for w in client._workers} == {"http://127.0.0.1:5005", "http://127.0.0.1:5006"}
    finally:
        await client.close()


def test_an_empty_worker_list_is_refused() -> None:
    with pytest.raises(ValueError, match="RASA_URL"):
        RasaClient(" , ")
