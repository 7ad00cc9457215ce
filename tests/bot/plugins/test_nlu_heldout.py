"""NLU quality on the held-out set (tests/nlu/heldout_*.yml), which is never used for training or tuning.

Runs in the Rasa (3.10) environment against the model that setup trained (models/CURRENT). Fails when intent
macro-F1 drops below MIN_MACRO_F1 in either language, or when entity extraction misses annotated numbers.

The held-out sets were rewritten blind for issue 11 (tests/nlu/README.md): the old ones shared ~40 % of their lines
with data/nlu (exact or near duplicates) and had been used to tune the fallback threshold, so their 0.967 (en) /
0.963 (zh) overstated generalisation. On the rewritten sets the same model (models/csbot-35903580ecb6bfa9) measured
macro-F1 0.899 (en) and 0.898 (zh). The issue's target is >= 0.95 per language; MIN_MACRO_F1 is only a regression
gate at the measured value rounded down to 0.01, minus 0.02. Raise it as the model improves; never by editing the
held-out sets towards the model's predictions. Thresholds are tuned on tests/nlu/tuning_*.yml, never on these sets.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.shared.paths import REPO_ROOT

ROOT = REPO_ROOT
MIN_MACRO_F1 = 0.87  # regression gate; issue 11 target 0.95 (see the docstring)
TARGET_MACRO_F1 = 0.95
MIN_ENTITY_RECALL = 0.95


@pytest.fixture(scope="module")
def agent():
    from rasa.core.agent import Agent

    marker = ROOT / "models" / "CURRENT"
    if not marker.exists():
        pytest.fail("no trained model: run scripts/setup.sh first")
    return Agent.load(str(ROOT / "models" / marker.read_text().strip()))


def _examples(path: Path):
    from rasa.shared.nlu.training_data.loading import load_data

    return load_data(str(path)).intent_examples


def _evaluate(agent, language: str) -> tuple[float, dict[str, dict[str, float]], float, list[dict]]:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    examples = _examples(ROOT / "tests" / "nlu" / f"heldout_{language}.yml")
    gold, predicted, errors = [], [], []
    entity_hits = entity_total = 0
    loop = asyncio.new_event_loop()
    try:
        for ex in examples:
            text = ex.get("text")
            parsed = loop.run_until_complete(agent.parse_message(text))
            intent = parsed["intent"]["name"]
            gold.append(ex.get("intent"))
            predicted.append(intent)
            if intent != ex.get("intent"):
                errors.append({"text": text, "gold": ex.get("intent"), "predicted": intent,
                               "confidence": round(parsed["intent"]["confidence"], 3)})
            found = {(e["entity"], str(e["value"]).upper()) for e in parsed["entities"]}
            for e in ex.get("entities") or []:
                entity_total += 1
                entity_hits += (e["entity"], str(e["value"]).upper()) in found
    finally:
        loop.close()
    labels = sorted(set(gold))
    macro = f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)
    p, r, f, _ = precision_recall_fscore_support(gold, predicted, labels=labels, zero_division=0)
    per_intent = {lab: {"precision": round(pp, 3), "recall": round(rr, 3), "f1": round(ff, 3)}
                  for lab, pp, rr, ff in zip(labels, p, r, f)}
    recall = entity_hits / entity_total if entity_total else 1.0
    return macro, per_intent, recall, errors


@pytest.mark.parametrize("language", ["en", "zh"])
def test_heldout_intent_macro_f1_and_entities(agent, language: str) -> None:
    macro, per_intent, entity_recall, errors = _evaluate(agent, language)
    report_dir = ROOT / "var" / "reports"
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / f"nlu_heldout_{language}.json").write_text(
        json.dumps({"macro_f1": round(macro, 4), "entity_recall": round(entity_recall, 4),
                    "per_intent": per_intent, "errors": errors}, ensure_ascii=False, indent=1)
    )
    print(f"\n[{language}] held-out intent macro-F1 = {macro:.3f} (gate {MIN_MACRO_F1}, target {TARGET_MACRO_F1}); "
          f"entity recall = {entity_recall:.3f}; {len(errors)} errors (var/reports/nlu_heldout_{language}.json)")
    assert macro >= MIN_MACRO_F1, f"{language} macro-F1 {macro:.3f} < {MIN_MACRO_F1}"
    assert entity_recall >= MIN_ENTITY_RECALL


MAX_CONFIDENT_OUT_OF_SCOPE = 0.10


def test_unrelated_requests_do_not_get_a_confident_store_answer(agent) -> None:
    """CLINC150's out-of-scope validation utterances (never trained on) must end in out_of_scope or the
    rephrase fallback, not in a confident store intent such as order_status."""
    utterances = json.loads((ROOT / "tests" / "nlu" / "clinc150_oos_val.json").read_text())["utterances"]
    loop = asyncio.new_event_loop()
    try:
        intents = [loop.run_until_complete(agent.parse_message(u))["intent"]["name"] for u in utterances]
    finally:
        loop.close()
    wrong = [(u, i) for u, i in zip(utterances, intents) if i not in ("out_of_scope", "nlu_fallback")]
    rate = len(wrong) / len(utterances)
    print(f"\nCLINC150 oos_val: {rate:.1%} answered with a store intent ({len(wrong)}/{len(utterances)}); "
          f"{intents.count('nlu_fallback')} fell back, {intents.count('out_of_scope')} out_of_scope")
    assert rate <= MAX_CONFIDENT_OUT_OF_SCOPE, wrong[:20]
