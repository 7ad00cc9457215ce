"""The one client for the Rasa server: REST channel for messages, token-protected HTTP API for trackers.

Several Rasa workers can share the load (``RASA_URL`` lists them, comma-separated). A conversation always goes to
the same worker (hash of its id), so its messages stay in order on one process; any worker could serve it, because
trackers live in Redis and Rasa's Redis lock store serialises the turns of one conversation across processes.
"""
from __future__ import annotations

import zlib
from typing import Any, Dict, List

import httpx


class RasaError(Exception):
    """Rasa did not answer usably (down, timed out, or a non-2xx status)."""


class RasaClient:
    """Thin async wrapper; one instance per process, created at start-up, closed at shutdown."""

    def __init__(self, base_url: str, token: str = "", timeout_s: float = 20.0) -> None:
        self._token = token
        urls = [url.strip().rstrip("/") for url in base_url.split(",") if url.strip()]
        if not urls:
            raise ValueError("RASA_URL names no Rasa server")
        self._workers = [httpx.AsyncClient(base_url=url, timeout=timeout_s) for url in urls]

    @property
    def workers(self) -> int:
        return len(self._workers)

    def _for(self, sender_id: str) -> httpx.AsyncClient:
        """The worker that serves this conversation (stable for a given list of workers)."""
        return self._workers[zlib.crc32(sender_id.encode("utf-8")) % len(self._workers)]

    async def close(self) -> None:
        for worker in self._workers:
            await worker.aclose()

    async def send_message(
        self, sender_id: str, text: str, metadata: Dict[str, Any] | None = None
    ) -> List[Dict[str, Any]]:
        """Send one customer message through Rasa's REST channel and return the bot's messages."""
        payload = {"sender": sender_id, "message": text, "metadata": metadata or {}}
        try:
            response = await self._for(sender_id).post("/webhooks/rest/webhook", json=payload)
        except httpx.HTTPError as exc:
            raise RasaError(f"Rasa unreachable: {exc.__class__.__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise RasaError(f"Rasa answered HTTP {response.status_code}")
        body = response.json()
        if not isinstance(body, list):
            raise RasaError("Rasa answered with an unexpected body")
        return body

    async def get_tracker(self, sender_id: str) -> Dict[str, Any]:
        """Read a conversation's tracker through the HTTP API (needs the auth token)."""
        try:
            response = await self._for(sender_id).get(
                f"/conversations/{sender_id}/tracker", params={"token": self._token}
            )
        except httpx.HTTPError as exc:
            raise RasaError(f"Rasa unreachable: {exc.__class__.__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise RasaError(f"Rasa answered HTTP {response.status_code}")
        return response.json()

    async def append_events(self, sender_id: str, events: List[Dict[str, Any]]) -> None:
        """Append events to a tracker (e.g. ``resume`` when an agent hands a conversation back to the bot)."""
        try:
            response = await self._for(sender_id).post(
                f"/conversations/{sender_id}/tracker/events",
                params={"token": self._token, "include_events": "NONE"},
                json=events,
            )
        except httpx.HTTPError as exc:
            raise RasaError(f"Rasa unreachable: {exc.__class__.__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise RasaError(f"Rasa answered HTTP {response.status_code}")

    async def is_ready(self) -> bool:
        """True when every worker is up and has a model loaded."""
        for worker in self._workers:
            try:
                response = await worker.get("/status", params={"token": self._token})
            except httpx.HTTPError:
                return False
            if not (200 <= response.status_code < 300 and bool(response.json().get("model_file"))):
                return False
        return True
