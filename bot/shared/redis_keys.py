"""The project's Redis key space: the root prefix, and which module owns each namespace.

Every key is ``csbot:<namespace>:...`` so the database can be shared with other applications. Each namespace has
one module with one function per key (the function's docstring says the key's type and meaning); no other code
spells a key:

| namespace | module |
|---|---|
| ``conv``, ``device``, ``rl``, ``handoff(s)``, ``queue``, ``stats``, ``customer``, ``ticket(s)``, \
``ticket_counter``, ``sla_alerted``, ``alert(s)``, ``desk``, ``audit``, ``agent(s)``, ``session``, ``login``, \
``webhook``, ``kb`` | :mod:`conversations.keys` (gateway and desk; the ``kb`` streams are written by the action \
server and read by the workbench inbox) |
| ``complaints``, ``incidents`` | :mod:`bot.shared.frustration.keys` (complaint detection) |
| ``verify`` | :mod:`actions.keys` (action server: verification; it re-exports the ``kb`` keys) |

Rasa's own keys are configured in ``endpoints.yml`` (``csbottracker`` tracker store, ``csbotlock`` lock store).
Pure (no I/O), imported on Python 3.10 and 3.11.
"""
from __future__ import annotations

PREFIX = "csbot"


def stream_id_at(ts: float) -> str:
    """The smallest Redis stream entry id at Unix time ``ts`` (``<ms>-0``): the start of an XRANGE, or the MINID
    that trims every entry older than ``ts``."""
    return f"{int(ts * 1000)}-0"
