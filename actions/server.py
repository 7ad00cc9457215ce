"""The action server process: rasa-sdk's app, bound to loopback, one process, and authenticated.

Rasa is the only legitimate caller of ``POST /webhook``. A caller that can reach it could otherwise hand the actions
a forged tracker (slots claiming a verified order, a made-up escalation), so every request except ``/health`` must
carry the shared secret ``ACTION_SERVER_TOKEN`` in the ``X-Action-Token`` header (Rasa sends it from
``endpoints.yml: action_endpoint.headers``). Without a configured token the server refuses every action call.

Run: ``python -m actions.server [--port 5055]``.
"""
from __future__ import annotations

import argparse
import hmac
import logging

from actions.settings import ActionServerSettings, get_settings

logger = logging.getLogger(__name__)
TOKEN_HEADER = "X-Action-Token"  # noqa: S105 - a header name
OPEN_PATHS = frozenset({"/health", "/metrics"})  # /metrics checks METRICS_TOKEN itself (actions/metrics.py)


def authorised(supplied: str | None, expected: str) -> bool:
    """Constant-time check of the shared secret; an unset secret authorises nobody."""
    if not expected or not supplied:
        return False
    return hmac.compare_digest(supplied.encode("utf-8"), expected.encode("utf-8"))


def build_app(token: str, package: str = "actions", metrics_token: str = ""):  # noqa: ANN201 - a sanic.Sanic
    """rasa-sdk's Sanic app with the actions of ``package`` and the token check in front of it."""
    from rasa_sdk.endpoint import create_app
    from rasa_sdk.executor import ActionExecutor
    from sanic import response

    from actions import metrics

    executor = ActionExecutor()
    executor.register_package(package)
    app = create_app(executor, cors_origins=[])
    if not token:
        logger.error("ACTION_SERVER_TOKEN is not set: every action call will be refused")
    metrics.install(app, executor, metrics_token)

    @app.on_request
    async def _require_token(request):  # noqa: ANN001, ANN202 - sanic's request / response types
        if request.path in OPEN_PATHS:
            return None
        if not authorised(request.headers.get(TOKEN_HEADER), token):
            return response.json({"error": f"missing or wrong {TOKEN_HEADER}"}, status=401)
        return None

    @app.post("/kb/decide")
    async def kb_decide(request):  # noqa: ANN001, ANN202 - sanic's request / response types
        """The knowledge base's decision for a question, exactly as the bot makes it (``knowledge.decide``), with
        no side effect: the editors' workbench ("try a question") asks it through the gateway."""
        body = request.json if isinstance(request.json, dict) else {}
        payload, status = await kb_decision(body)
        return response.json(payload, status=status)

    @app.post("/kb/embed")
    async def kb_embed(request):  # noqa: ANN001, ANN202 - sanic's request / response types
        """Sentence vectors of a few texts from the retrieval model the bot already holds (the workbench inbox
        groups similar customer messages with them; the gateway loads no model of its own)."""
        body = request.json if isinstance(request.json, dict) else {}
        payload, status = await kb_embeddings(body)
        return response.json(payload, status=status)

    from actions import desk_orders

    desk_orders.install(app, response)  # the agent desk's order view and actions (actions/desk_orders.py)
    return app


EMBED_MAX_TEXTS = 64


async def kb_embeddings(body: dict) -> tuple[dict, int]:
    """``POST /kb/embed`` body ``{"texts": [str, ...]}`` (1-64 texts, each cut to 1000 characters) -> unit vectors
    of the knowledge base's query encoder (cosine = dot product), with the model's identity."""
    import asyncio

    from actions import knowledge

    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or len(texts) > EMBED_MAX_TEXTS \
            or not all(isinstance(t, str) and t.strip() for t in texts):
        return {"error": f"texts must be a list of 1-{EMBED_MAX_TEXTS} non-empty strings"}, 422
    try:
        retriever = knowledge.get_retriever()
        vectors = await asyncio.to_thread(retriever.query_encoder.encode_queries, [t.strip()[:1000] for t in texts])
    except knowledge.KnowledgeBaseDown as exc:
        return {"error": f"knowledge base unavailable: {exc}"}, 503
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = matrix / np.where(norms > 0, norms, 1.0)
    return {"model": retriever.model_identity, "dim": int(matrix.shape[1]),
            "vectors": [[round(float(x), 5) for x in row] for row in matrix]}, 200


async def kb_decision(body: dict) -> tuple[dict, int]:
    """``POST /kb/decide`` body ``{"question", "language"?: zh|en, "previous"?}`` -> (JSON, status)."""
    import asyncio

    from actions import knowledge
    from bot.shared.text import detect_language

    question = str(body.get("question") or "").strip()[:1000]
    if not question:
        return {"error": "question is empty"}, 422
    language = body.get("language") if body.get("language") in ("zh", "en") else (detect_language(question) or "en")
    previous = str(body.get("previous") or "").strip()[:1000] or None
    try:
        decision = await asyncio.to_thread(knowledge.decide, question, language, previous)
    except knowledge.KnowledgeBaseDown as exc:
        return {"error": f"knowledge base unavailable: {exc}"}, 503
    retriever = knowledge.get_retriever()
    return {
        "question": question, "language": language, "decision": decision.action,
        "hits": [{"id": hit.id, "title": hit.title, "score": round(float(hit.score), 4), "level": level}
                 for hit, level in decision.hits],
        "suggestions": [hit.id for hit in decision.suggestions] if decision.action == knowledge.SUGGEST else [],
        "thresholds": {"confident": retriever.settings.confident_threshold,
                       "middling": retriever.settings.middling_threshold,
                       "clear_margin": retriever.settings.clear_margin},
        "index_build": retriever.fingerprint.get("build_id"),
    }, 200


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the action server (loopback, token-protected).")
    parser.add_argument("--port", type=int, default=None, help="overrides ACTION_SERVER_PORT")
    parser.add_argument("--host", default=None, help="overrides ACTION_SERVER_HOST")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings: ActionServerSettings = get_settings()  # ACTION_SERVER_HOST / _PORT / _TOKEN (actions/settings.py)
    app = build_app(settings.action_server_token.get_secret_value(),
                    metrics_token=settings.metrics_token.get_secret_value())
    from actions import routing

    routing.classifier()  # trained now (about 2 s) rather than while the first customer waits
    host = args.host or settings.action_server_host
    port = args.port or settings.action_server_port
    logger.info("action server on http://%s:%s", host, port)
    # One process (no Sanic worker child left behind when the launcher stops it); the launcher supervises it.
    app.run(host=host, port=port, single_process=True, access_log=False, motd=False)


if __name__ == "__main__":
    main()
