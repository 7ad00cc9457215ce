"""Benchmark: cost of scoring one message (and of one escalation decision), p50/p95/p99 in milliseconds.

Run: ``python -m tools.bench_frustration [--rounds 20]``. Uses every customer message of the evaluation
conversations (Chinese and English, short and long) so the numbers reflect real message lengths. Target: p95 of
message scoring <= 5 ms on one core.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bot.shared.frustration.conversation import Turn
from bot.shared.frustration.escalation import EscalationEngine
from bot.shared.frustration.paths import (
    DEFAULT_ESCALATION_PATH,
    DEFAULT_EVAL_PATH,
    DEFAULT_SCORING_PATH,
    DEFAULT_TRAIN_PATH,
)
from bot.shared.frustration.scorer import build_scoring_context, score_message
from tools.evaluate_frustration import load_conversations


def percentiles_ms(samples_ns: Sequence[int]) -> str:
    """p50 / p95 / p99 / max of nanosecond samples, formatted in milliseconds."""
    values = np.array(samples_ns, dtype=np.float64) / 1e6
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return f"p50 {p50:.3f} ms  p95 {p95:.3f} ms  p99 {p99:.3f} ms  max {values.max():.3f} ms  (n={len(values)})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--conversations", type=Path, default=DEFAULT_EVAL_PATH)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    context = build_scoring_context(DEFAULT_SCORING_PATH, DEFAULT_TRAIN_PATH)
    build_seconds = time.perf_counter() - started
    engine = EscalationEngine.from_yaml(DEFAULT_ESCALATION_PATH)
    conversations = load_conversations(args.conversations)
    messages = [turn.text for c in conversations for turn in c.turns]

    for text in messages:  # warm-up: regex caches, numpy code paths
        score_message(text, context=context)
    scoring: list[int] = []
    scoring_cpu: list[int] = []
    for _ in range(args.rounds):
        for text in messages:
            c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
            score_message(text, context=context)
            scoring.append(time.perf_counter_ns() - t0)
            scoring_cpu.append(time.thread_time_ns() - c0)

    deciding: list[int] = []
    for _ in range(max(1, args.rounds // 4)):
        for conversation in conversations:
            turns = [Turn(t.text, 30.0) for t in conversation.turns]
            t0 = time.perf_counter_ns()
            engine.assess_conversation(turns, tier=conversation.tier)
            deciding.append(time.perf_counter_ns() - t0)

    print(f"context build (compile wording + train classifier): {build_seconds:.2f} s, "
          f"{len(context.classifier.vocabulary) if context.classifier else 0} classifier features")
    print(f"score_message over {len(messages)} messages x {args.rounds} rounds: {percentiles_ms(scoring)}")
    print(f"score_message CPU time of the thread (without time spent descheduled): {percentiles_ms(scoring_cpu)}")
    print(f"load average while measuring: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"escalation decision per conversation (scores given): {percentiles_ms(deciding)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
