"""A minimal Server-Sent Events reader (httpx streaming), used by the benchmark and the tests."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx


async def sse_events(http: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
                     ) -> AsyncIterator[dict[str, Any]]:
    """Yield {"id", "event", "data"} for each event (keep-alive comments skipped)."""
    async with http.stream("GET", url, headers=headers or {}, timeout=None) as response:
        if response.status_code != 200:
            raise httpx.HTTPStatusError(f"SSE answered {response.status_code}", request=response.request,
                                        response=response)
        event: dict[str, Any] = {}
        async for line in response.aiter_lines():
            if line == "":
                if "data" in event:
                    yield event
                event = {}
            elif line.startswith(":") or line.startswith("retry:"):
                continue
            else:
                field, _, value = line.partition(": ")
                if field == "data":
                    event["data"] = json.loads(value)
                else:
                    event[field] = value
