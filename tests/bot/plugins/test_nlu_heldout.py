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


def _evaluate(agent, language: str) -> tuple[float, dict[str, dict[str, float]], float, list[dict]]:
    """The held-out measurement, made by bot/nlu_eval.py (the retrain gate makes the same one)."""
    from bot.nlu_eval import evaluate

    result = evaluate(agent, ROOT / "tests" / "nlu" / f"heldout_{language}.yml")
    errors = [line for line in result["lines"] if line["predicted"] != line["gold"]]
    return result["macro_f1"], result["per_intent"], result["entity_recall"], errors


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
