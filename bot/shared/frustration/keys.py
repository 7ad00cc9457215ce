"""Every Redis key of the complaint detection (``csbot:complaints``, ``csbot:incidents``), in one place.
The root prefix and the map of all namespaces: :mod:`bot.shared.redis_keys`.

Identifier parts are percent-encoded, so a ``:`` inside a customer id can never make two keys collide.
"""
from __future__ import annotations

from urllib.parse import quote

from bot.shared.redis_keys import PREFIX


def repeat_flags() -> str:
    """Stream: one entry per customer + order newly flagged as a repeat complainer (for supervisors)."""
    return f"{PREFIX}:complaints:repeat_flags"


def incident_alerts() -> str:
    """Stream: one entry per group incident (many customers, same problem, short window), read by supervisors."""
    return f"{PREFIX}:incidents:alerts"


# The same two keys as constants, for readers written before the functions (handoff/alerts.py).
REPEAT_FLAGS_STREAM = repeat_flags()
INCIDENT_ALERTS_STREAM = incident_alerts()


def _part(value: str) -> str:
    return quote(value, safe="")


def repeat_complaints(customer_id: str, order_number: str) -> str:
    """Sorted set: complaint ids of one customer about one order, scored by time (trimmed to the window)."""
    return f"{PREFIX}:complaints:repeat:{_part(customer_id)}:{_part(order_number)}"


def repeat_flag_claim(customer_id: str, order_number: str) -> str:
    """String with TTL: set once when the pair is flagged, so the supervisors' stream gets one entry per window."""
    return f"{PREFIX}:complaints:repeat_flagged:{_part(customer_id)}:{_part(order_number)}"


def incident_reports(kind: str, value: str) -> str:
    """Sorted set: customer ids reporting one problem key, scored by their latest report time."""
    return f"{PREFIX}:incidents:reports:{_part(kind)}:{_part(value)}"


def incident_alert_claim(kind: str, value: str) -> str:
    """String with TTL: set once when the alert for a problem key is raised (one alert per window)."""
    return f"{PREFIX}:incidents:alerted:{_part(kind)}:{_part(value)}"
