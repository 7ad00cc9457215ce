"""Intent and entity evaluation of trained Rasa models on NLU files (Rasa environment, Python 3.10).

One home for the measurement the held-out test (tests/bot/plugins/test_nlu_heldout.py) and the editors' retrain gate
(workbench/releases.py) both make: every line of a file parsed by the model, macro-F1 over the file's intents,
precision/recall/F1 per intent, entity recall on the annotated numbers, and each line's prediction (so a gate can list
the lines a candidate newly gets wrong).

    python -m bot.nlu_eval --model models/a.tar.gz [--model models/b.tar.gz] --out report.json FILE...

writes ``{"models": {<model path>: {<file name>: report}}}``; a model that cannot be loaded gets ``{"error": ...}``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def examples(path: Path) -> list[Any]:
    from rasa.shared.nlu.training_data.loading import load_data

    return list(load_data(str(path)).intent_examples)


def evaluate(agent: Any, path: Path) -> dict[str, Any]:
    """The agent's intents and entities on every example of the NLU file at ``path``."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    gold: list[str] = []
    predicted: list[str] = []
    lines: list[dict[str, Any]] = []
    entity_hits = entity_total = 0
    loop = asyncio.new_event_loop()
    try:
        for ex in examples(path):
            text = ex.get("text")
            parsed = loop.run_until_complete(agent.parse_message(text))
            intent = parsed["intent"]["name"]
            gold.append(ex.get("intent"))
            predicted.append(intent)
            lines.append({"text": text, "gold": ex.get("intent"), "predicted": intent,
                          "confidence": round(float(parsed["intent"]["confidence"]), 3)})
            found = {(e["entity"], str(e["value"]).upper()) for e in parsed["entities"]}
            for e in ex.get("entities") or []:
                entity_total += 1
                entity_hits += (e["entity"], str(e["value"]).upper()) in found
    finally:
        loop.close()
    labels = sorted(set(gold))
    macro = float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0))
    p, r, f, support = precision_recall_fscore_support(gold, predicted, labels=labels, zero_division=0)
    per_intent = {lab: {"precision": round(float(pp), 3), "recall": round(float(rr), 3), "f1": round(float(ff), 3),
                        "support": int(ss)}
                  for lab, pp, rr, ff, ss in zip(labels, p, r, f, support)}
    return {"macro_f1": round(macro, 4), "per_intent": per_intent, "n": len(lines),
            "accuracy": round(sum(g == q for g, q in zip(gold, predicted)) / len(lines), 4) if lines else None,
            "entity_recall": round(entity_hits / entity_total, 4) if entity_total else 1.0,
            "lines": lines}


def load_agent(model: str) -> Any:
    from rasa.core.agent import Agent

    return Agent.load(model)


def _quiet() -> None:
    """Warnings only: Rasa's processor logs every parse at debug level (thousands of lines per model)."""
    import logging

    import structlog

    logging.basicConfig(level=logging.WARNING)
    for name in ("rasa", "tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.nlu_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="a trained model (.tar.gz); repeatable")
    parser.add_argument("--out", required=True, help="where to write the JSON report")
    parser.add_argument("files", nargs="+", help="Rasa NLU YAML files to evaluate on")
    args = parser.parse_args(argv)
    _quiet()
    report: dict[str, Any] = {"models": {}}
    for model in args.model:
        try:
            agent = load_agent(model)
            if not agent.is_ready():
                raise ValueError("the file holds no usable model")
        except Exception as exc:  # noqa: BLE001 - a corrupt candidate is a finding, not a crash
            report["models"][model] = {"error": f"{exc.__class__.__name__}: {exc}"[:500]}
            print(f"{model}: cannot be loaded ({exc.__class__.__name__})", file=sys.stderr)
            continue
        report["models"][model] = {Path(f).name: evaluate(agent, Path(f)) for f in args.files}
        for name, result in report["models"][model].items():
            print(f"{model} {name}: macro-F1 {result['macro_f1']:.3f} on {result['n']} lines", file=sys.stderr)
    out = Path(args.out)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")
    tmp.replace(out)
    return 0 if all("error" not in r for r in report["models"].values()) else 3


if __name__ == "__main__":
    raise SystemExit(main())
