"""What a customer actually gets: held-out conversations driven through the web chat API of a running stack.

Each conversation (tests/answers/blind_{zh,en}.yml, written blind: never trained or tuned on) is sent turn by turn,
from its own browser, to ``POST /api/webchat/messages``, exactly as the web page does. Every bot reply is classified
from what the customer sees (and, for handoffs, the conversation's owner in Redis):

    right      the expected knowledge-base article's answer is in the reply
    wrong      another article's answer is
    dym        "did you mean" buttons instead of an answer
    declined   out of scope / "no reliable answer" / the rephrase fallback
    handoff    the conversation went to a person (outside service hours: a ticket for one was opened)
    form       the bot asked for an order number or phone digits (for an order request also after an article: the
               request is served, the article is extra)
    other      anything else (small talk replies, flow messages)

Usage:
    .venv-app/bin/python tools/answers_eval.py                       # starts its own stack, both sets
    .venv-app/bin/python tools/answers_eval.py --web-url URL --redis-url URL [--json out.json] [SET ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))
from conversations import keys  # noqa: E402 - after the path set-up

DEFAULT_SETS = [ROOT / "tests" / "answers" / "blind_zh.yml", ROOT / "tests" / "answers" / "blind_en.yml"]
CLASSES = ("right", "wrong", "dym", "declined", "handoff", "form", "other")


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text or "")


@dataclass
class Catalogue:
    """What the bot can say, to recognise replies: article answers and the decline / form responses."""

    answers: dict[str, str] = field(default_factory=dict)  # normalised answer text -> article id
    declines: list[str] = field(default_factory=list)
    form_prompts: list[str] = field(default_factory=list)

    @classmethod
    def load(cls) -> Catalogue:
        cat = cls()
        for path in sorted((ROOT / "data" / "kb").glob("*.yml")):
            for article in yaml.safe_load(path.read_text(encoding="utf-8"))["articles"]:
                for text in article["answer"].values():
                    cat.answers[_norm(text)] = article["id"]
        responses = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))["responses"]

        def texts(name: str) -> list[str]:
            return [_norm(v["text"]) for v in responses.get(name, []) if v.get("text")]

        for name in ("utter_out_of_scope", "utter_kb_no_answer", "utter_ask_rephrase_content"):
            cat.declines += texts(name)
        for name in ("utter_ask_order_number", "utter_ask_phone_last4"):
            cat.form_prompts += texts(name)
        return cat

    def articles_in(self, messages: list[dict[str, Any]]) -> list[str]:
        found = []
        for m in messages:
            text = _norm(m.get("text", ""))
            found += [aid for answer, aid in self.answers.items() if answer and answer in text]
        return found


def classify(
    cat: Catalogue, messages: list[dict[str, Any]], handed_over: bool, expect: dict[str, Any]
) -> tuple[str, list[str]]:
    """The class of one reply against its expectation, and the articles it contained."""
    articles = cat.articles_in(messages)
    wanted = {expect["answer"], *expect.get("also", [])} if "answer" in expect else set()
    if handed_over:
        return "handoff", articles
    joined = _norm(" ".join(m.get("text", "") for m in messages))
    asked_for_the_order = any(p and p in joined for p in cat.form_prompts)
    if "form" in expect and asked_for_the_order:
        return "form", articles
    if wanted and wanted & set(articles):
        return "right", articles
    if articles:
        return "wrong", articles
    if any(str(b.get("payload", "")).startswith("/ask_policy{") for m in messages for b in m.get("buttons", [])):
        return "dym", articles
    if asked_for_the_order:
        return "form", articles
    if any(d and d in joined for d in cat.declines):
        return "declined", articles
    return "other", articles


def expected_kind(expect: dict[str, Any]) -> str:
    return next(k for k in ("answer", "form", "handoff", "decline", "smalltalk") if k in expect)


def passed(kind: str, got: str) -> bool:
    """Did the reply meet the expectation?"""
    return {
        "answer": got == "right",
        "form": got == "form",
        "handoff": got == "handoff",
        "decline": got in ("declined", "other"),
        "smalltalk": got == "other",
    }[kind]


@dataclass
class Turn:
    conversation: str
    language: str
    tags: list[str]
    position: int
    text: str
    kind: str
    expect: dict[str, Any]
    got: str
    articles: list[str]
    reply: str
    handoff_reason: str | None = None  # why the conversation went to a person (the handoff's reason code)


async def run_conversation(
    http: httpx.AsyncClient, redis: Redis, web_url: str, cat: Catalogue, conv: dict[str, Any], language: str
) -> list[Turn]:
    cid: str | None = None
    handoff_before: bytes | None = None
    out: list[Turn] = []
    for i, turn in enumerate(conv["turns"]):
        body = {
            "conversation_id": cid,
            "message_id": uuid.uuid4().hex,
            "text": turn["user"],
            "metadata": {"ui_lang": language},
        }
        for attempt in range(5):
            r = await http.post(f"{web_url}/api/webchat/messages", json=body)
            if r.status_code not in (409, 429, 503):
                break
            await asyncio.sleep(1 + attempt)
        r.raise_for_status()
        data = r.json()
        cid = data["conversation_id"]
        owner = await redis.get(keys.owner(cid))
        handoff_id = await redis.get(keys.conversation_handoff(cid))
        # A person took over (the owner changed), or - outside service hours - a ticket was opened for one while the
        # bot keeps answering: a handoff this turn made either way.
        handed = owner is not None and owner.decode() != "bot"
        ticketed = handoff_id is not None and handoff_id != handoff_before
        reason = None
        if (handed or ticketed) and handoff_id:
            raw = await redis.hget(keys.handoff(handoff_id.decode()), "reason_code")
            reason = raw.decode() if raw else None
        handoff_before = handoff_id
        messages = [m for m in data["messages"] if m["role"] in ("bot", "system")]
        got, articles = classify(cat, messages, handed or ticketed, turn["expect"])
        out.append(
            Turn(
                conv["id"],
                language,
                conv.get("tags", []),
                i,
                turn["user"],
                expected_kind(turn["expect"]),
                turn["expect"],
                got,
                articles,
                " | ".join(m["text"] for m in messages)[:300],
                reason,
            )
        )
        if handed:
            break  # the bot no longer answers this conversation
    return out


async def evaluate(web_url: str, redis_url: str, sets: list[Path], concurrency: int = 4) -> list[Turn]:
    cat = Catalogue.load()
    redis = Redis.from_url(redis_url)
    jobs = []
    for path in sets:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        jobs += [(conv, data["language"]) for conv in data["conversations"]]
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    turns: list[Turn] = []

    async def worker() -> None:
        while not queue.empty():
            conv, language = queue.get_nowait()
            async with httpx.AsyncClient(timeout=120) as http:  # one browser per conversation
                turns.extend(await run_conversation(http, redis, web_url, cat, conv, language))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await redis.aclose()
    return turns


def summary(turns: list[Turn]) -> dict[str, dict[str, Any]]:
    """Per language: the classes of in-scope policy questions (first turns), follow-ups, and the other kinds."""
    out: dict[str, dict[str, Any]] = {}
    for language in sorted({t.language for t in turns}):
        mine = [t for t in turns if t.language == language]
        policy = [t for t in mine if t.kind == "answer" and t.position == 0]
        follow = [t for t in mine if t.kind == "answer" and t.position > 0]
        counts = Counter(t.got for t in policy)
        row: dict[str, Any] = {"policy_n": len(policy)}
        row.update({c: counts.get(c, 0) / max(1, len(policy)) for c in CLASSES})
        row["followup_n"] = len(follow)
        row["followup_right"] = sum(t.got == "right" for t in follow) / max(1, len(follow))
        for kind in ("form", "handoff", "decline", "smalltalk"):
            these = [t for t in mine if t.kind == kind]
            row[f"{kind}_n"] = len(these)
            row[f"{kind}_ok"] = sum(passed(kind, t.got) for t in these) / max(1, len(these))
        out[language] = row
    return out


def print_report(turns: list[Turn]) -> None:
    table = summary(turns)
    print("\nIn-scope policy questions (first turn), share of replies per class:")
    print(f"{'lang':5} {'n':>4} " + " ".join(f"{c:>9}" for c in CLASSES))
    for language, row in table.items():
        print(f"{language:5} {row['policy_n']:>4} " + " ".join(f"{row[c]:>9.3f}" for c in CLASSES))
    print("\nOther expectations (share met):")
    for language, row in table.items():
        parts = [f"follow-ups in context {row['followup_right']:.3f} (n={row['followup_n']})"]
        parts += [f"{k} {row[f'{k}_ok']:.3f} (n={row[f'{k}_n']})" for k in ("form", "handoff", "decline", "smalltalk")]
        print(f"{language:5} " + "; ".join(parts))
    by_tag: dict[tuple[str, str], list[Turn]] = defaultdict(list)
    for t in turns:
        if t.kind == "answer":
            for tag in t.tags:
                by_tag[(t.language, tag)].append(t)
    print("\nPolicy answers right, per phrasing tag:")
    for (language, tag), these in sorted(by_tag.items()):
        if len(these) >= 5:
            print(f"  {language} {tag:22} {sum(t.got == 'right' for t in these) / len(these):.3f} (n={len(these)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="*", type=Path, default=DEFAULT_SETS)
    parser.add_argument("--web-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--json", type=Path, help="write every turn with its class here")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    stack = None
    if not args.web_url:
        from stack import Stack  # scripts/stack.py

        relaxed = {
            "WEB_LIMIT_NEW_CONVERSATIONS": "100000/minute",
            "WEB_LIMIT_NEW_CONVERSATIONS_DEVICE": "100000/minute",
            "WEB_LIMIT_MESSAGES": "100000/minute",
            "WEB_LIMIT_HANDOFFS": "100000/minute",
        }
        stack = Stack.on_free_ports(var_dir=ROOT / "var" / "answers-eval", extra_env=relaxed)
        print("starting the stack ...", flush=True)
        stack.start()
        args.web_url, args.redis_url = stack.web_url, stack.env()["REDIS_URL"]
    try:
        turns = asyncio.run(evaluate(args.web_url, args.redis_url, args.sets, args.concurrency))
    finally:
        if stack is not None:
            stack.stop()
    print_report(turns)
    if args.json:
        args.json.write_text(json.dumps([t.__dict__ for t in turns], ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
