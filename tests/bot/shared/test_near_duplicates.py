"""The near-duplicate rule (bot/shared/near_duplicates.py) that the NLU split tests and the workbench inbox share;
pure, run on Python 3.10 and 3.11."""
from __future__ import annotations

from bot.shared.near_duplicates import THRESHOLD, normalise, similarity, strip_annotations


def test_normalising_folds_annotations_width_case_digits_and_punctuation() -> None:
    assert strip_annotations("track [SF123456789012](tracking_number) pls") == "track SF123456789012 pls"
    assert normalise("Where's my ORDER [ＤＭ２０２６１１０５１２](order_number)？？") == "wheresmyorderdm0000000000"
    assert normalise("我的 快递，到哪了？！") == normalise("我的快递到哪了")
    assert normalise("👍") == "👍" and normalise("  ") == ""


def test_the_threshold_catches_a_typo_and_passes_a_rewording() -> None:
    base = normalise("can you check where my parcel is right now please")
    assert similarity(base, normalise("can you chek where my parcel is right now please")) >= THRESHOLD
    assert similarity(base, normalise("any idea when the package will get to me")) < THRESHOLD
    assert similarity("abc", "abc") == 1.0
