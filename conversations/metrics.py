"""Operations metrics of the gateway process, in Prometheus' data model (``prometheus_client``).

The instruments live here because the code paths that feed them are in ``conversations`` (the Rasa client) and
above it (the gateway's turn in ``channels/dispatch.py``, the outbox, the analytics consumer); ``channels/metrics.py``
serves them, with the live values read from Redis at scrape time (queue, outbox, alerts, model), at ``/metrics``
behind ``METRICS_TOKEN``. Creating the instruments registers them in the process's default registry: no I/O.

Label values are closed sets (a channel name, a Rasa endpoint, an error kind), never ids or text.
"""
from __future__ import annotations

from prometheus_client import Counter, Histogram

# Seconds; a turn includes Rasa (NLU, policies, custom actions), so the tail reaches the Rasa timeout (20 s).
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0)

TURN_SECONDS = Histogram(
    "csbot_gateway_turn_seconds",
    "Gateway end-to-end turn: customer message received -> replies stored (includes the Rasa call).",
    ["channel"], buckets=LATENCY_BUCKETS)
RASA_SECONDS = Histogram(
    "csbot_rasa_request_seconds",
    "One request from the gateway to a Rasa worker (message = the REST channel turn, tracker / events = HTTP API).",
    ["endpoint"], buckets=LATENCY_BUCKETS)
OUTBOX_SEND_SECONDS = Histogram(
    "csbot_outbox_send_seconds",
    "One call to a messaging platform's API by the outbox (a reply leaving for Telegram, WhatsApp, ...).",
    ["channel"], buckets=LATENCY_BUCKETS)
ERRORS = Counter(
    "csbot_errors_total",
    "Errors by component and kind (Rasa unreachable / timeout / HTTP status, outbox delivery, background loops).",
    ["component", "kind"])


def error(component: str, kind: str) -> None:
    ERRORS.labels(component=component, kind=kind).inc()
