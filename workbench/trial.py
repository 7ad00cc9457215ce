"""The "try a question" check: the knowledge base's decision for a question, asked of the action server
(``POST /kb/decide``), which answers with the function the bot itself uses (``actions/knowledge.py: decide``) on the
index it serves now.

Why over HTTP: the decision needs the loaded retrieval model and index (about 0.5 GB); the action server already
holds them and reloads them when the index is rebuilt, so the answer is the bot's, not a second copy's, and the
gateway process stays small. The workbench does not import ``actions`` (tests/test_layering.py).
"""
from __future__ import annotations

from typing import Any

import httpx

from workbench.settings import WorkbenchSettings

TOKEN_HEADER = "X-Action-Token"  # noqa: S105 - a header name (actions/server.py)


class TryUnavailable(Exception):
    """The action server could not be asked; the message says why."""


async def decide(settings: WorkbenchSettings, question: str, language: str | None, previous: str | None
                 ) -> dict[str, Any]:
    body: dict[str, Any] = {"question": question}
    if language:
        body["language"] = language
    if previous:
        body["previous"] = previous
    headers = {TOKEN_HEADER: settings.action_token.get_secret_value()}
    try:
        async with httpx.AsyncClient(timeout=settings.try_timeout_s) as client:
            response = await client.post(f"{settings.action_base_url}/kb/decide", json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise TryUnavailable(f"the action server at {settings.action_base_url} did not answer ({type(exc).__name__})"
                             ) from exc
    if response.status_code != 200:
        try:
            why = response.json().get("error") or response.text
        except ValueError:
            why = response.text
        raise TryUnavailable(f"the action server answered {response.status_code}: {str(why)[:300]}")
    return response.json()
