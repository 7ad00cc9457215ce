"""Split hygiene of the NLU evaluation data (rule in tests/nlu/splits.py; why in tests/nlu/README.md).

Fails when a held-out or tuning line is an exact or near duplicate (SequenceMatcher ratio >= 0.9 after normalising
case, full-width forms, digits, punctuation, whitespace and emoji) of a line Rasa trains on, when the held-out and
tuning splits share a line, or when a split is too small or mis-annotated. Pure Python, a few seconds.
Failure messages name the training line by file:line only, so whoever replaces the line can stay blind to it.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import yaml

from bot.shared.patterns import find_identifiers
from tests.nlu.splits import (
    ROOT,
    THRESHOLD,
    Example,
    Finding,
    NearDuplicateIndex,
    duplicates_within,
    heldout_files,
    load_all,
    load_examples,
    near_duplicates,
    normalise,
    similarity,
    strip_annotations,
    training_files,
    tuning_files,
)

MIN_HELDOUT_PER_INTENT = 30
MIN_TUNING_PER_INTENT = 15


@pytest.fixture(scope="module")
def training() -> list[Example]:
    files = training_files()
    assert {p.name for p in files} >= {"en.yml", "zh.yml", "out_of_scope_clinc.yml"}, files
    examples = load_all(files)
    assert len(examples) > 1000
    return examples


@pytest.fixture(scope="module")
def training_index(training: list[Example]) -> NearDuplicateIndex:
    return NearDuplicateIndex(training)


def _report(findings) -> str:
    shown = "\n".join(f.describe() for f in findings[:40])
    more = f"\n... and {len(findings) - 40} more" if len(findings) > 40 else ""
    return f"{len(findings)} line(s) to replace with freshly written ones (never edit data/nlu):\n{shown}{more}"


# --- the rule itself ---------------------------------------------------------------------------------------------

def test_normalise_folds_case_width_digits_punctuation_emoji_and_annotations() -> None:
    assert normalise("Where's my ORDER [ＤＭ２０２６１１０５１２](order_number)？？ 😀") == "wheresmyorderdm0000000000"
    assert normalise("where is my order dm2025010101") == normalise("Where is my order DM2026110512!")
    assert normalise("我的 快递，到哪了？！") == normalise("我的快递到哪了")
    assert normalise("  ") == ""
    assert normalise("👍") == "👍"  # nothing left: the raw text is the key, so only a literal repeat matches
    assert normalise("👍") != normalise("🙏")


def test_similarity_threshold_catches_small_edits_and_passes_rewordings() -> None:
    base = normalise("can you check where my parcel is right now please")
    one_typo = normalise("can you chek where my parcel is right now please")
    reworded = normalise("any idea when the package will get to me")
    assert similarity(base, one_typo) >= THRESHOLD
    assert similarity(base, reworded) < THRESHOLD


def test_candidate_pruning_never_misses_a_pair_that_brute_force_finds() -> None:
    rng = random.Random(11)
    alphabet = "abcdefg退款快递到哪了0"
    refs = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))) for _ in range(150)]
    queries = []
    for r in refs[:100]:
        chars = list(r)
        for _ in range(rng.randint(0, 3)):
            op = rng.random()
            pos = rng.randrange(len(chars) + 1)
            if op < 0.4:
                chars.insert(pos, rng.choice(alphabet))
            elif op < 0.8 and chars:
                del chars[min(pos, len(chars) - 1)]
            elif chars:
                chars[min(pos, len(chars) - 1)] = rng.choice(alphabet)
        queries.append("".join(chars) or "a")
    queries += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))) for _ in range(50)]
    ref_examples = [Example(r, "x", Path("ref"), i, r) for i, r in enumerate(refs)]
    index = NearDuplicateIndex(ref_examples)
    flagged = 0
    for q in queries:
        brute = max(similarity(r, q) for r in refs)
        hit = index.find(q)
        if brute >= THRESHOLD:
            flagged += 1
            assert hit is not None and hit[1] == pytest.approx(brute), q
        else:
            assert hit is None, q
    assert flagged > 30  # the sample does exercise the flagged side


def test_a_leaked_training_line_is_caught_even_when_disguised(training: list[Example]) -> None:
    """Take real training lines, disguise them (case, full-width digits, punctuation, another order number, one
    typo in a long line) and check the split test would flag them."""
    rng = random.Random(7)
    long_lines = [ex for ex in training if len(ex.key) >= 20]
    leaked = []
    for i, ex in enumerate(rng.sample(long_lines, 40)):
        text = strip_annotations(ex.text).upper() + "!!"
        text = text.translate(str.maketrans("0123456789", "９８７６５４３２１０"))
        if i % 2:
            pos = len(text) // 2
            text = text[:pos] + "x" + text[pos + 1:]
        leaked.append(Example(text, ex.intent, Path("leak.yml"), i + 1, normalise(text)))
    assert len(near_duplicates(leaked, training)) == len(leaked)


# --- the data ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", heldout_files() + tuning_files(), ids=lambda p: p.name)
def test_no_evaluation_line_is_a_near_duplicate_of_training(path: Path, training_index: NearDuplicateIndex) -> None:
    findings = []
    for ex in load_examples(path):
        hit = training_index.find(ex.key)
        if hit is not None:
            findings.append(Finding(ex, hit[0], hit[1]))
    assert not findings, _report(findings)


def test_heldout_and_tuning_splits_share_no_line() -> None:
    findings = near_duplicates(load_all(heldout_files()), load_all(tuning_files()))
    assert not findings, _report(findings)


@pytest.mark.parametrize("path", heldout_files() + tuning_files(), ids=lambda p: p.name)
def test_no_split_repeats_a_line(path: Path) -> None:
    findings = duplicates_within(load_examples(path))
    assert not findings, _report(findings)


def _domain_intents() -> list[str]:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    return [i if isinstance(i, str) else next(iter(i)) for i in domain["intents"]]


@pytest.mark.parametrize(
    "path,minimum",
    [(p, MIN_HELDOUT_PER_INTENT) for p in heldout_files()] + [(p, MIN_TUNING_PER_INTENT) for p in tuning_files()],
    ids=lambda v: v.name if isinstance(v, Path) else str(v),
)
def test_every_intent_has_enough_examples(path: Path, minimum: int) -> None:
    counts: dict[str, int] = {}
    for ex in load_examples(path):
        counts[ex.intent] = counts.get(ex.intent, 0) + 1
    intents = _domain_intents()
    assert set(counts) == set(intents), set(counts) ^ set(intents)
    short = {i: n for i, n in counts.items() if n < minimum}
    assert not short, f"fewer than {minimum} examples: {short}"


@pytest.mark.parametrize("path", heldout_files() + tuning_files(), ids=lambda p: p.name)
def test_identifier_annotations_match_what_the_pipeline_extracts(path: Path) -> None:
    """Every order/tracking/phone number in a line is annotated, with the right entity (the held-out test scores
    entity recall against these annotations)."""
    annotation = re.compile(r"\[([^\]]*)\]\(([a-z_]+)\)")
    wrong = []
    for ex in load_examples(path):
        annotated = {(entity, value.upper()) for value, entity in annotation.findall(ex.text)}
        found = {(m.entity, m.value) for m in find_identifiers(strip_annotations(ex.text))}
        if annotated != found:
            wrong.append(f"{ex.where} {ex.text!r}: annotated {sorted(annotated)}, extracted {sorted(found)}")
    assert not wrong, "\n".join(wrong)
