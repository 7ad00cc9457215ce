"""A fake Rasa worker on a real loopback port (asyncio, HTTP/1.1 with keep-alive) for fail-over tests.

It answers the REST channel with one message naming itself, serves trackers and event appends, and can be told to
hang (accept the request, answer late) or to drop the connection after reading a request (a worker killed mid-turn).
"""
from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any


def closed_port() -> int:
    """A loopback port nobody listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeRasa:
    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[dict[str, Any]] = []
        self.mode = "answer"  # answer | hang | drop | empty
        self.hang_s = 5.0
        self.tracker: dict[str, Any] = {"events": []}
        self.model_file = "model.tar.gz"  # what /status reports; ``PUT /model`` (Rasa's model replacement) sets it
        # Awaited with each REST message before the answer (e.g. to change the owner key meanwhile).
        self.before_answer: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> FakeRasa:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def messages(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if r["path"] == "/webhooks/rest/webhook"]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                pairs = (line.partition(":") for line in lines[1:] if line)
                headers = {k.strip().lower(): v.strip() for k, _, v in pairs}
                raw = await reader.readexactly(int(headers.get("content-length") or 0))
                path = target.split("?", 1)[0]
                body = json.loads(raw) if raw else None
                self.requests.append({"method": method, "path": path, "body": body})
                if self.mode == "drop":
                    writer.transport.abort()
                    return
                if self.mode == "hang":
                    await asyncio.sleep(self.hang_s)
                if self.before_answer is not None and path == "/webhooks/rest/webhook":
                    await self.before_answer(body)
                status, payload = self._answer(method, path, body)
                data = json.dumps(payload).encode()
                writer.write(f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # client gone, or the loop shutting down
        finally:
            writer.close()

    def _answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if path == "/webhooks/rest/webhook":
            if self.mode == "empty":
                return 200, []
            return 200, [{"recipient_id": body["sender"], "text": f"{self.name}:{body['message']}"}]
        if path.endswith("/tracker/events"):
            self.tracker["events"].extend(body or [])
            return 200, {}
        if path.endswith("/tracker"):
            return 200, self.tracker
        if path == "/status":
            return 200, {"model_file": self.model_file}
        if path == "/model" and method == "PUT":
            self.model_file = str((body or {}).get("model_file") or "")
            return 200, {}
        return 404, {"error": "not found"}
