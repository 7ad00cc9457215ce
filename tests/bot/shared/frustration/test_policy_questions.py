"""Several different knowledge questions in a row are not a repeated request (found by the chat benchmark: a calm
customer asking four policy questions was handed over for 'high frustration')."""
from __future__ import annotations

from bot.shared.frustration.conversation import Turn, score_conversation
from bot.shared.frustration.escalation import EscalationEngine


def test_different_policy_questions_do_not_add_repeat_points() -> None:
    engine = EscalationEngine.from_yaml()
    questions = ["what payment methods do you accept", "can I get an invoice", "退货运费谁出", "会员有什么权益",
                 "how long does a refund take"]
    turns = [Turn(q, 0, "ask_policy") for q in questions]
    score = score_conversation(turns, config=engine.config.conversation)
    assert score.signals["repeated_requests"] == 0 and score.score == 0
    assert not engine.assess_conversation(turns).should_escalate


def test_the_same_policy_question_again_still_counts_as_a_repeat() -> None:
    engine = EscalationEngine.from_yaml()
    turns = [Turn("退货运费到底谁出", 0, "ask_policy"), Turn("退货的运费到底谁出啊", 0, "ask_policy")]
    assert score_conversation(turns, config=engine.config.conversation).signals["repeated_requests"] == 1
