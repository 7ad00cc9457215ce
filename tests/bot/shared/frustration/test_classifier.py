"""The n-gram classifier and its training data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.shared.frustration.classifier import (
    LABELS,
    LabelledMessage,
    NgramClassifier,
    label_counts,
    load_nlu_background,
    load_training_data,
    ngram_features,
)
from bot.shared.frustration.paths import DEFAULT_TRAIN_PATH


def test_training_data_is_large_bilingual_and_covers_every_label() -> None:
    examples = load_training_data(DEFAULT_TRAIN_PATH)
    counts = label_counts(examples)
    assert len(examples) >= 300
    for label in LABELS:
        for lang in ("zh", "en"):
            assert counts[(label, lang)] >= 50, (label, lang)
    texts = [e.text for e in examples]
    assert len(set(texts)) == len(texts), "duplicate training messages"


def test_digits_are_folded_so_order_numbers_are_not_features() -> None:
    assert ngram_features("dm2026110512") == ngram_features("dm2026031488")
    assert "w:where" in ngram_features("where is it")


def _toy() -> list[LabelledMessage]:
    calm = ["where is my order", "thanks a lot", "when will it ship", "can I change the address"]
    annoyed = ["still waiting for days", "why so slow again", "this is taking forever", "still no update"]
    angry = ["useless garbage service", "you are scammers", "worst shop ever garbage", "scam scam scam"]
    return (
        [LabelledMessage(t, "calm", "en") for t in calm]
        + [LabelledMessage(t, "annoyed", "en") for t in annoyed]
        + [LabelledMessage(t, "angry", "en") for t in angry]
    )


def test_classifier_learns_and_round_trips_through_files(tmp_path: Path) -> None:
    clf = NgramClassifier.train(_toy(), preprocess=str.lower, epochs=150)
    calm, _ = clf.expected_anger("where is my parcel")
    angry, probs = clf.expected_anger("garbage scam")
    assert angry > 0.7 > 0.3 > calm
    assert set(probs) == set(LABELS) and abs(sum(probs.values()) - 1) < 1e-3

    clf.save(tmp_path)
    loaded = NgramClassifier.load(tmp_path)
    for text in ("garbage scam", "still waiting", "thanks"):
        assert np.allclose(loaded.predict_proba(text), clf.predict_proba(text))


def test_classifier_refuses_data_without_every_label() -> None:
    with pytest.raises(ValueError, match="every label"):
        NgramClassifier.train([LabelledMessage("hi", "calm", "en")], preprocess=str.lower)


def test_corrupt_model_files_are_detected(tmp_path: Path) -> None:
    clf = NgramClassifier.train(_toy(), preprocess=str.lower, epochs=5)
    clf.save(tmp_path)
    np.save(tmp_path / "classifier_bias.npy", np.zeros(7, dtype=np.float32), allow_pickle=False)
    with pytest.raises(ValueError, match="inconsistent"):
        NgramClassifier.load(tmp_path)


def test_nlu_background_strips_entity_markup(tmp_path: Path) -> None:
    nlu = tmp_path / "nlu.yml"
    nlu.write_text(
        'version: "3.1"\nnlu:\n- intent: order_status\n  examples: |\n    - where is [DM2026110512](order_number)\n'
        "    - 我的订单[DM2026031488](order_number)到哪了\n- intent: complaint\n  examples: |\n    - 我要投诉\n",
        encoding="utf-8",
    )
    examples = load_nlu_background([nlu], ["order_status"], weight=0.5)
    assert [(e.text, e.label, e.lang, e.weight) for e in examples] == [
        ("where is DM2026110512", "calm", "en", 0.5),
        ("我的订单DM2026031488到哪了", "calm", "zh", 0.5),
    ]


def test_bad_training_file_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "train.yml"
    bad.write_text("data:\n- label: furious\n  lang: en\n  examples: |\n    - grr\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown label"):
        load_training_data(bad)
