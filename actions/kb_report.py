"""Editors' report: unanswered questions and articles customers found unhelpful.

Usage: .venv-app/bin/python -m actions.kb_report [--limit 50]   (reads REDIS_URL, default the local project Redis)
"""
from __future__ import annotations

import argparse
import asyncio
from collections import Counter

from redis.asyncio import Redis

from actions.kb_feedback import FEEDBACK_STREAM, UNANSWERED_STREAM, FeedbackStore
from actions.settings import get_settings


async def main(limit: int) -> None:
    store = FeedbackStore(Redis.from_url(get_settings().redis_url))
    unanswered = await store.read(UNANSWERED_STREAM, limit)
    feedback = await store.read(FEEDBACK_STREAM, 100_000)
    print(f"Unanswered questions (latest {len(unanswered)}):")
    for row in unanswered:
        print(f"  [{row['language']}] {row['question'][:100]}  (best score {row['best_score'] or '-'})")
    votes = Counter((row["article_id"], row["helpful"]) for row in feedback)
    articles = sorted({a for a, _ in votes})
    print("\nArticle feedback (helpful / not helpful):")
    for article in sorted(articles, key=lambda a: -votes[(a, "0")]):
        print(f"  {article:<45} {votes[(article, '1')]:>4} / {votes[(article, '0')]:>4}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=50)
    asyncio.run(main(parser.parse_args().limit))
