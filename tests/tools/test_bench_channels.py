"""tools/bench_channels.py measures what it says: a passive reply is timed by the response, an outbound one by the
platform accepting it, the rest of a turn's batch is not counted, a turn nobody answers is counted lost."""
from __future__ import annotations

import threading
import time

from tools import bench_channels
from tools.bench_channels import Customer, converse


def test_passive_api_and_lost_turns_are_told_apart(monkeypatch) -> None:
    monkeypatch.setattr(bench_channels, "TIMEOUT_S", 0.5)
    monkeypatch.setattr(bench_channels, "SETTLE_S", 0.15)  # longer than the gap inside a batch
    delivered: list[str] = []

    def send(text: str) -> str | None:
        if text == "passive":
            return "answered at once"
        if text == "api":  # two replies of one turn, 0.1 s apart, after 0.2 s
            def later() -> None:
                time.sleep(0.2)
                delivered.append("first")
                time.sleep(0.1)
                delivered.append("second")
            threading.Thread(target=later, daemon=True).start()
        return None  # "silent": nothing ever arrives

    latencies, lost, ways = converse(Customer(send, lambda: len(delivered)), ["passive", "api", "silent"])
    assert lost == 1 and ways == "api+passive" and len(latencies) == 2
    assert latencies[0] < 0.1 and 0.2 <= latencies[1] < 0.3  # the first reply of the batch, not the second
    assert delivered == ["first", "second"]  # the batch had settled before the next message
