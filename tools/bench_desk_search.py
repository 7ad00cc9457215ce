"""Time the desk's search of past conversations (handoff/cases.py) over N indexed conversations, on a throw-away
Redis started here (redis-server from the app environment): a text search that matches nothing (every document
read inside Redis), one with many matches (the newest 20 returned), an order-number look-up. Documents are
synthetic, about 900 characters each (a real one is capped at 20,000).

Run: ``PYTHONPATH=. .venv-app/bin/python -m tools.bench_desk_search [--sizes 1000 5000]``.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from conversations import keys
from handoff.cases import CaseLibrary

WORDS = ["parcel", "late", "refund", "return", "broken", "size", "colour", "address", "courier", "coupon", "delivery",
         "package", "box"]
RUNS = 15


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _fill(redis: Redis, n: int) -> None:
    rng = random.Random(7)
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(n):
            hid, order = f"h{i:06d}", f"DM20261{i:05d}"
            text = " ".join(rng.choice(WORDS) for _ in range(120)) + f" order {order}"
            pipe.hset(keys.search_doc(hid), mapping={
                "handoff_id": hid, "conversation_id": f"c{i}", "created_at": repr(now - i), "status": "closed",
                "reason_code": "complaint", "resolution": "resolved", "language": "en", "channel": "webchat",
                "customer_id": str(i % 500), "agent_id": "a", "supervisor_only": "", "orders": order,
                "preview": text[:160], "text": text})
            pipe.zadd(keys.search_recent(), {hid: now - i})
            pipe.zadd(keys.search_by_order(order), {hid: now - i})
        await pipe.execute()


async def measure(n: int) -> None:
    binary = shutil.which("redis-server", path=str(Path(sys.executable).parent)) or shutil.which("redis-server")
    if not binary:
        raise SystemExit("redis-server not found (run scripts/setup.sh)")
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", tempfile.mkdtemp()], stdout=subprocess.DEVNULL)
    try:
        await asyncio.sleep(0.5)
        redis = Redis.from_url(f"redis://127.0.0.1:{port}/0")
        await _fill(redis, n)
        library = CaseLibrary(redis, None, None, 30 * 86400, n)  # type: ignore[arg-type]

        async def built(limit: int = 0) -> int:  # the index is built: time the search itself
            return 0

        library.catch_up = built  # type: ignore[method-assign]
        for label, kwargs in (("text, no match (reads all)", {"text": "zebra"}),
                              ("text, many matches (newest 20)", {"text": "broken courier"}),
                              ("order number", {"order": f"DM20261{n // 2:05d}"})):
            times = []
            found: list = []
            for _ in range(RUNS):
                start = time.perf_counter()
                found = await library.search(limit=20, **kwargs)
                times.append(time.perf_counter() - start)
            print(f"n={n} {label}: median {statistics.median(times) * 1000:.1f} ms, "
                  f"max {max(times) * 1000:.1f} ms, results {len(found)}")
        await redis.aclose()
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    for size in parser.parse_args().sizes:
        asyncio.run(measure(size))


if __name__ == "__main__":
    main()
