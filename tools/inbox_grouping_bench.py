"""How long the workbench inbox takes to group its open messages (workbench/inbox.py: Inbox.groups), measured on
synthetic rows with 384-dimension unit vectors (the KB encoder's size) in a throw-away SQLite file.

Usage: PYTHONPATH=. .venv-app/bin/python -m tools.inbox_grouping_bench [--items 2000] [--topics 200]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from workbench import db
from workbench.inbox import Inbox, encode_vector
from workbench.settings import WorkbenchSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--topics", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(args.topics, 384))
    with tempfile.TemporaryDirectory() as tmp:
        settings = WorkbenchSettings(database_url=f"sqlite:///{Path(tmp) / 'wb.db'}", inbox_max_items=args.items)
        inbox = Inbox(db.make_engine(settings.database_url), settings)
        rows = []
        for i in range(args.items):
            topic = int(rng.integers(args.topics))
            v = centres[topic] + rng.normal(scale=0.15, size=384)
            v /= np.linalg.norm(v)
            rows.append({"ref": f"r{i}", "source": "kb_no_answer", "conversation_id": f"c{i}", "ts": float(i),
                         "language": "en", "text": f"message {i} about topic {topic}", "key": f"m{i}",
                         "detail": "{}", "status": "open", "vector": encode_vector(v)})
        inbox.insert(rows)
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            out = inbox.groups()
            timings.append(time.perf_counter() - started)
    print(f"{args.items} open messages, {args.topics} topics -> {out['group_count']} groups; "
          f"grouping took median {sorted(timings)[2] * 1000:.0f} ms (min {min(timings) * 1000:.0f} ms, 5 runs)")


if __name__ == "__main__":
    main()
