"""Evaluates frustration scoring + escalation rules on held-out labelled conversations.

Run: ``python -m tools.evaluate_frustration [--conversations PATH] [--errors]``. Trains the classifier from
``data/frustration/train.yml`` first (the evaluation file is never trained on), then replays every conversation
turn by turn, exactly as the action server would, and reports recall on must-escalate conversations, the false
escalation rate on calm ones, and precision/recall per reason code and language.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.shared.frustration.conversation import Turn
from bot.shared.frustration.escalation import REASON_CODES, Escalation, EscalationEngine
from bot.shared.frustration.paths import (
    DEFAULT_ESCALATION_PATH,
    DEFAULT_EVAL_PATH,
    DEFAULT_SCORING_PATH,
    DEFAULT_TRAIN_PATH,
)
from bot.shared.frustration.scorer import ScoringContext, build_scoring_context, score_message


@dataclass(frozen=True)
class EvalTurn:
    text: str
    bot_failed: bool = False
    wait_seconds: float = 0.0
    intent: str | None = None


@dataclass(frozen=True)
class EvalConversation:
    id: str
    lang: str
    tier: str | None
    turns: tuple[EvalTurn, ...]
    expect_escalate: bool
    expect_reason: str | None


@dataclass(frozen=True)
class Prediction:
    conversation: EvalConversation
    escalate: bool
    reason: str | None
    priority: int
    turn_index: int | None
    message_scores: tuple[int, ...]
    conversation_scores: tuple[int, ...]


@dataclass
class Counts:
    """Counts of one slice (all, a language, ...)."""

    must: int = 0
    caught: int = 0
    reason_right: int = 0
    calm: int = 0
    false_escalations: int = 0

    @property
    def recall(self) -> float:
        return self.caught / self.must if self.must else 1.0

    @property
    def false_rate(self) -> float:
        return self.false_escalations / self.calm if self.calm else 0.0


@dataclass
class EvalReport:
    predictions: list[Prediction]
    overall: Counts
    by_language: dict[str, Counts]
    by_reason: dict[str, dict[str, float]]
    by_reason_language: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)


def load_conversations(path: Path) -> list[EvalConversation]:
    """Parse the evaluation YAML (format documented at the top of the file)."""
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    conversations = []
    for item in raw["conversations"]:
        default_wait = float(item.get("wait_seconds", 0.0))
        turns = []
        for turn in item["turns"]:
            if isinstance(turn, str):
                turns.append(EvalTurn(turn, wait_seconds=default_wait))
            else:
                turns.append(
                    EvalTurn(
                        str(turn["text"]),
                        bool(turn.get("bot_failed", False)),
                        float(turn.get("wait_seconds", default_wait)),
                        turn.get("intent"),
                    )
                )
        expect = item["expect"]
        reason = expect.get("reason")
        if expect["escalate"] and reason not in REASON_CODES:
            raise ValueError(f"{item['id']}: escalating conversations need a valid reason, got {reason!r}")
        conversations.append(
            EvalConversation(
                id=str(item["id"]),
                lang=str(item["lang"]),
                tier=item.get("tier"),
                turns=tuple(turns),
                expect_escalate=bool(expect["escalate"]),
                expect_reason=reason if expect["escalate"] else None,
            )
        )
    return conversations


def replay(conversation: EvalConversation, context: ScoringContext, engine: EscalationEngine) -> Prediction:
    """Feed the conversation turn by turn; the first escalating turn decides."""
    turns: list[Turn] = []
    failures = 0
    message_scores: list[int] = []
    conversation_scores: list[int] = []
    for index, eval_turn in enumerate(conversation.turns):
        scored = score_message(eval_turn.text, context=context)
        score = scored.score
        message_scores.append(score)
        turns.append(Turn(eval_turn.text, score, eval_turn.intent, scored.signals.get("topics")))
        failures = failures + 1 if eval_turn.bot_failed else 0
        decision: Escalation = engine.assess_conversation(
            turns, consecutive_failures=failures, tier=conversation.tier, wait_seconds=eval_turn.wait_seconds
        )
        conversation_scores.append(int(decision.signals.get("frustration", 0)))
        if decision.should_escalate:
            return Prediction(
                conversation, True, decision.reason_code, decision.priority, index,
                tuple(message_scores), tuple(conversation_scores),
            )
    return Prediction(
        conversation, False, None, engine.config.no_escalation_priority, None,
        tuple(message_scores), tuple(conversation_scores),
    )


def _reason_table(predictions: Sequence[Prediction]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for reason in REASON_CODES:
        expected = [p for p in predictions if p.conversation.expect_reason == reason]
        predicted = [p for p in predictions if p.reason == reason]
        right = [p for p in expected if p.reason == reason]
        table[reason] = {
            "expected": len(expected),
            "predicted": len(predicted),
            "correct": len(right),
            "escalated": sum(1 for p in expected if p.escalate),
            "precision": len(right) / len(predicted) if predicted else float("nan"),
            "recall": len(right) / len(expected) if expected else float("nan"),
        }
    return table


def _count(predictions: Sequence[Prediction]) -> Counts:
    counts = Counts()
    for p in predictions:
        if p.conversation.expect_escalate:
            counts.must += 1
            counts.caught += int(p.escalate)
            counts.reason_right += int(p.reason == p.conversation.expect_reason)
        else:
            counts.calm += 1
            counts.false_escalations += int(p.escalate)
    return counts


def evaluate(
    conversations: Sequence[EvalConversation], context: ScoringContext, engine: EscalationEngine
) -> EvalReport:
    """Replay all conversations and aggregate."""
    predictions = [replay(c, context, engine) for c in conversations]
    languages = sorted({c.lang for c in conversations})
    return EvalReport(
        predictions=predictions,
        overall=_count(predictions),
        by_language={lang: _count([p for p in predictions if p.conversation.lang == lang]) for lang in languages},
        by_reason=_reason_table(predictions),
        by_reason_language={
            (reason, lang): values
            for lang in languages
            for reason, values in _reason_table([p for p in predictions if p.conversation.lang == lang]).items()
        },
    )


def _fmt(value: float) -> str:
    return "  -  " if value != value else f"{value:5.2f}"  # NaN check without math import


def format_report(report: EvalReport, *, show_errors: bool = False) -> str:
    """Human-readable report."""
    lines = []
    o = report.overall
    lines.append(f"conversations: {len(report.predictions)} (must escalate {o.must}, calm {o.calm})")
    lines.append(
        f"overall: escalation recall {o.recall:.3f} ({o.caught}/{o.must}), "
        f"reason accuracy {o.reason_right / o.must if o.must else 1:.3f}, "
        f"false escalation rate {o.false_rate:.3f} ({o.false_escalations}/{o.calm})"
    )
    for lang, c in report.by_language.items():
        lines.append(
            f"  {lang}: recall {c.recall:.3f} ({c.caught}/{c.must}), reason accuracy "
            f"{c.reason_right / c.must if c.must else 1:.3f}, false escalation rate {c.false_rate:.3f} "
            f"({c.false_escalations}/{c.calm})"
        )
    langs = sorted(report.by_language)
    header = f"{'reason':22} {'n':>4} {'prec':>5} {'rec':>5} {'esc':>5}" + "".join(
        f" | {lang}: {'n':>3} {'prec':>5} {'rec':>5}" for lang in langs
    )
    lines.append("")
    lines.append(header)
    for reason in REASON_CODES:
        r = report.by_reason[reason]
        row = (
            f"{reason:22} {int(r['expected']):4d} {_fmt(r['precision'])} {_fmt(r['recall'])} "
            f"{int(r['escalated']):5d}"
        )
        for lang in langs:
            rl = report.by_reason_language[(reason, lang)]
            row += f" | {lang}: {int(rl['expected']):3d} {_fmt(rl['precision'])} {_fmt(rl['recall'])}"
        lines.append(row)
    lines.append("(prec/rec: reason code right; esc: conversations of that reason escalated for any reason)")
    if show_errors:
        lines.append("")
        for p in report.predictions:
            c = p.conversation
            if p.escalate != c.expect_escalate or p.reason != c.expect_reason:
                lines.append(
                    f"{c.id}: expected {c.expect_reason or 'no escalation'}, got {p.reason or 'no escalation'}"
                    f" at turn {p.turn_index}; message scores {list(p.message_scores)}, "
                    f"conversation {list(p.conversation_scores)}"
                )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=Path, default=DEFAULT_EVAL_PATH)
    parser.add_argument("--scoring", type=Path, default=DEFAULT_SCORING_PATH)
    parser.add_argument("--train", type=Path, default=DEFAULT_TRAIN_PATH)
    parser.add_argument("--escalation", type=Path, default=DEFAULT_ESCALATION_PATH)
    parser.add_argument("--errors", action="store_true", help="list every wrong conversation")
    args = parser.parse_args(argv)
    context = build_scoring_context(args.scoring, args.train)
    engine = EscalationEngine.from_yaml(args.escalation)
    report = evaluate(load_conversations(args.conversations), context, engine)
    print(format_report(report, show_errors=args.errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
