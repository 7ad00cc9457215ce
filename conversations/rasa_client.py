"""The one client for the Rasa server: REST channel for messages, token-protected HTTP API for trackers.

Several Rasa workers can share the load (``RASA_URL`` lists them, comma-separated). A conversation goes to the same
worker (hash of its id), so its messages stay in order on one process; any worker can serve it, because trackers
live in Redis and Rasa's Redis lock store serialises the turns of one conversation across processes.

Fail-over: when a conversation's worker cannot be reached (connection refused, connect timeout), the request goes to
the next worker in a fixed order, so the conversation still sticks to one process while its own is down. A worker
that failed is skipped for ``down_s`` seconds (circuit breaker); after that the next request pinned to it probes it
again. Only requests that never reached a worker are resent: a worker that accepted a message and then timed out or
dropped the connection may still process it, and resending could answer the customer twice.

Draining: a worker about to load a new model (a deploy, workbench/releases.py) is marked draining in Redis
(``conversations.keys.rasa_draining``); every gateway follows that key (``follow_rollout``) and sends new requests to
the other workers meanwhile - a worker loading a model does not answer for half a minute.

Canary: ``RASA_CANARY_URL`` names one more worker, outside the rotation, that an editor loads a candidate model into
(workbench/releases.py); while a canary runs (``conversations.keys.canary``, followed by ``follow_rollout``), the
messages of the conversations in its share (conversations/canary.py) go to it first, and fail over to the live
workers when it cannot be reached.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from collections.abc import Callable
from typing import Any

import httpx

from conversations import canary as canary_mod
from conversations import keys, metrics
from conversations.redis_client import stopping

logger = logging.getLogger(__name__)
DRAIN_POLL_S = 0.5  # how often each gateway reads which workers are draining


class RasaError(Exception):
    """Rasa did not answer usably (down, timed out, or a non-2xx status).

    ``delivered`` is False only when no worker received the request (every one refused or was unreachable), so
    resending it cannot make Rasa process the message twice."""

    def __init__(self, message: str, *, delivered: bool = True, kind: str = "other") -> None:
        super().__init__(message)
        self.delivered = delivered
        self.kind = kind  # the label of csbot_errors_total{component="rasa"}


class _NotSent(Exception):
    """Internal: this worker did not receive the request; another may."""


class RasaClient:
    """Thin async wrapper; one instance per process, created at start-up, closed at shutdown."""

    def __init__(
        self,
        base_url: str,
        token: str = "",
        timeout_s: float = 20.0,
        *,
        connect_timeout_s: float = 2.0,
        down_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        canary_url: str = "",
    ) -> None:
        self._token = token
        urls = [url.strip().rstrip("/") for url in base_url.split(",") if url.strip()]
        if not urls:
            raise ValueError("RASA_URL names no Rasa server")
        timeout = httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s))
        live = len(urls)
        if canary_url.strip():
            urls.append(canary_url.strip().rstrip("/"))
        # Index < live: the live workers (the rotation); index == live, when present: the canary worker.
        self._clients = [httpx.AsyncClient(base_url=url, timeout=timeout) for url in urls]
        self._workers = self._clients[:live]
        self._canary_index: int | None = live if len(urls) > live else None
        self._urls = urls
        self._down_until = [0.0] * len(urls)
        self._draining: frozenset[str] = frozenset()  # workers loading a new model: used only if no other answers
        self._canary: canary_mod.Canary | None = None
        self._inflight = [0] * len(urls)
        self._down_s = down_s
        self._clock = clock

    @property
    def workers(self) -> int:
        return len(self._workers)

    def _index(self, sender_id: str) -> int:
        return zlib.crc32(sender_id.encode("utf-8")) % len(self._workers)

    def _for(self, sender_id: str) -> httpx.AsyncClient:
        """The worker that serves this conversation while it is up (stable for a given list of workers)."""
        return self._workers[self._index(sender_id)]

    def _order(self, sender_id: str, canary: bool = False) -> list[int]:
        """Workers to try, in order: the conversation's own, then the next ones; workers marked down or draining go
        last (tried only when every other one failed too; the first request after the pause probes them). A canary
        conversation's own worker is the canary worker (while it is up), then the live ones."""
        first = self._index(sender_id)
        ring = [(first + k) % len(self._workers) for k in range(len(self._workers))]
        now = self._clock()
        usable = [i for i in ring if self._down_until[i] <= now and self._urls[i] not in self._draining]
        order = usable + [i for i in ring if i not in usable]
        index = self._canary_index
        if canary and index is not None:
            order = [index, *order] if self._down_until[index] <= now else [*order, index]
        return order

    @property
    def urls(self) -> list[str]:
        """The live workers' URLs (``RASA_URL`` order; the canary worker is not one of them)."""
        return list(self._urls[: len(self._workers)])

    @property
    def has_canary_worker(self) -> bool:
        return self._canary_index is not None

    @property
    def canary_index(self) -> int | None:
        """The canary worker's index for ``replace_model`` (None: ``RASA_CANARY_URL`` not set)."""
        return self._canary_index

    @property
    def canary(self) -> canary_mod.Canary | None:
        """The running canary as this gateway last read it (None: none, or no canary worker to route to)."""
        return self._canary if self._canary_index is not None else None

    def set_canary(self, canary: canary_mod.Canary | None) -> None:
        self._canary = canary

    def set_draining(self, urls: frozenset[str] | set[str]) -> None:
        """Workers about to load a new model (a deploy): new requests go to the others while any is up."""
        self._draining = frozenset(urls)

    def inflight(self, index: int) -> int:
        """Requests this process has sent to worker ``index`` and not yet seen answered."""
        return self._inflight[index]

    def is_down(self, index: int) -> bool:
        return self._down_until[index] > self._clock()

    def _mark_down(self, index: int, exc: Exception) -> None:
        if not self.is_down(index):
            logger.warning("Rasa worker %s failed (%s): skipped for %.0f s", self._clients[index].base_url,
                           exc.__class__.__name__, self._down_s)
        self._down_until[index] = self._clock() + self._down_s

    async def _request(self, sender_id: str, method: str, path: str, *, resend_after_failure: bool,
                       canary: bool = False, **kwargs: Any) -> httpx.Response:
        """One request, failing over to the next worker while none has received it.

        ``resend_after_failure``: a read (GET) may also be repeated on another worker after a worker received it
        and then failed; a message or an event append must not (it may have been processed)."""
        endpoint = _endpoint(path)
        started = time.perf_counter()
        try:
            response = await self._request_once(sender_id, method, path, resend_after_failure=resend_after_failure,
                                                canary=canary, **kwargs)
        except RasaError as exc:
            metrics.error("rasa", exc.kind)
            raise
        finally:
            metrics.RASA_SECONDS.labels(endpoint=endpoint).observe(time.perf_counter() - started)
        if not 200 <= response.status_code < 300:
            metrics.error("rasa", "http_status")
        return response

    async def _request_once(self, sender_id: str, method: str, path: str, *, resend_after_failure: bool,
                            canary: bool = False, **kwargs: Any) -> httpx.Response:
        problems = []
        for index in self._order(sender_id, canary=canary):
            worker = self._clients[index]
            self._inflight[index] += 1
            try:
                response = await worker.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Refused or unreachable: the worker never saw the request.
                self._mark_down(index, exc)
                problems.append(exc.__class__.__name__)
                continue
            except httpx.PoolTimeout as exc:
                # Our own connection pool to this worker is full: the request was not sent; the worker is busy,
                # not down.
                problems.append(exc.__class__.__name__)
                continue
            except httpx.TimeoutException as exc:
                # Received, but slow: it may still answer into the tracker. Not down, not resent.
                if resend_after_failure:
                    problems.append(exc.__class__.__name__)
                    continue
                raise RasaError(f"Rasa timed out: {exc.__class__.__name__}", kind="timeout") from exc
            except httpx.HTTPError as exc:
                # The connection broke after the request was sent (worker killed mid-request): down, not resent.
                self._mark_down(index, exc)
                if resend_after_failure:
                    problems.append(exc.__class__.__name__)
                    continue
                raise RasaError(f"Rasa connection lost: {exc.__class__.__name__}", kind="connection_lost") from exc
            finally:
                self._inflight[index] -= 1
            self._down_until[index] = 0.0
            return response
        raise RasaError(f"Rasa unreachable: {', '.join(problems) or 'no worker'}", delivered=False,
                        kind="unreachable")

    async def close(self) -> None:
        for worker in self._clients:
            await worker.aclose()

    async def send_message(
        self, sender_id: str, text: str, metadata: dict[str, Any] | None = None, *, canary: bool = False
    ) -> list[dict[str, Any]]:
        """Send one customer message through Rasa's REST channel and return the bot's messages; ``canary``: the
        conversation is in the running canary's share (the canary worker answers it while it is up)."""
        payload = {"sender": sender_id, "message": text, "metadata": metadata or {}}
        response = await self._request(sender_id, "POST", "/webhooks/rest/webhook", json=payload,
                                        resend_after_failure=False, canary=canary)
        if not 200 <= response.status_code < 300:
            raise RasaError(f"Rasa answered HTTP {response.status_code}")
        body = response.json()
        if not isinstance(body, list):
            metrics.error("rasa", "bad_body")
            raise RasaError("Rasa answered with an unexpected body")
        return body

    async def get_tracker(self, sender_id: str) -> dict[str, Any]:
        """Read a conversation's tracker through the HTTP API (needs the auth token)."""
        response = await self._request(sender_id, "GET", f"/conversations/{sender_id}/tracker",
                                        params={"token": self._token}, resend_after_failure=True)
        if not 200 <= response.status_code < 300:
            raise RasaError(f"Rasa answered HTTP {response.status_code}")
        return response.json()

    async def append_events(self, sender_id: str, events: list[dict[str, Any]]) -> None:
        """Append events to a tracker (e.g. ``resume`` when an agent hands a conversation back to the bot)."""
        response = await self._request(
            sender_id, "POST", f"/conversations/{sender_id}/tracker/events",
            params={"token": self._token, "include_events": "NONE"}, json=events, resend_after_failure=False,
        )
        if not 200 <= response.status_code < 300:
            raise RasaError(f"Rasa answered HTTP {response.status_code}")

    async def loaded_models(self, timeout_s: float = 2.0) -> dict[str, str | None]:
        """The model file each worker has loaded (None: down or no model), from Rasa's ``/status`` (HTTP API,
        token), by worker label: "0", "1"... in ``RASA_URL`` order, and "canary" for the canary worker when one is
        configured. What ``/metrics`` reports as the running model versions."""
        out: dict[str, str | None] = {}
        for index, worker in enumerate(self._clients):
            try:
                response = await worker.get("/status", params={"token": self._token}, timeout=timeout_s)
                model = response.json().get("model_file") if 200 <= response.status_code < 300 else None
            except (httpx.HTTPError, ValueError, AttributeError):
                model = None
            out["canary" if index == self._canary_index else str(index)] = str(model) if model else None
        return out

    async def replace_model(self, index: int, model_file: str, timeout_s: float = 120.0) -> str:
        """Load ``model_file`` (a path the worker can read) into worker ``index`` (``canary_index``: the canary
        worker) with Rasa's model-replacement API
        (``PUT /model``: the worker keeps its tracker store, lock store and action endpoint, and answers with the old
        model until the new one is loaded); returns the model file the worker reports afterwards. Raises RasaError
        when the worker refuses or cannot be reached."""
        worker = self._clients[index]
        try:
            response = await worker.put("/model", params={"token": self._token}, json={"model_file": model_file},
                                        timeout=timeout_s)
            if not 200 <= response.status_code < 300:
                raise RasaError(f"Rasa worker {index + 1} refused the model: HTTP {response.status_code} "
                                f"{response.text[:200]}")
            status = await worker.get("/status", params={"token": self._token}, timeout=10.0)
            return str(status.json().get("model_file") or "")
        except (httpx.HTTPError, ValueError) as exc:
            raise RasaError(f"Rasa worker {index + 1}: {exc.__class__.__name__}") from exc

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


def _endpoint(path: str) -> str:
    """The closed label set of csbot_rasa_request_seconds (no conversation ids)."""
    if path.endswith("/tracker/events"):
        return "events"
    if path.endswith("/tracker"):
        return "tracker"
    return "message" if path.startswith("/webhooks/") else "other"


async def follow_rollout(redis: Any, rasa: RasaClient, interval_s: float = DRAIN_POLL_S) -> None:
    """Keep ``rasa``'s draining workers equal to ``conversations.keys.rasa_draining`` and its canary equal to
    ``conversations.keys.canary`` (a background task of every gateway); a Redis error leaves the last known state
    and is retried."""
    while not stopping():
        try:
            raw, canary_raw = await redis.mget(keys.rasa_draining(), keys.canary())
            rasa.set_draining(frozenset(json.loads(raw)) if raw else frozenset())
            rasa.set_canary(canary_mod.parse(canary_raw))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a background follower must not die
            logger.warning("could not read the draining Rasa workers", exc_info=True)
        await asyncio.sleep(interval_s)
