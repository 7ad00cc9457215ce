"""Rasa dialogue policy: steps aside for a human when the escalation rules say so.

After every customer message it scores the conversation with the shared escalation engine
(:mod:`bot.shared.frustration.escalation`: frustration curve from the FrustrationScorer NLU component, repeated bot
failures, sensitive topics, tier) and, when a rule fires, predicts ``action_handoff_to_human`` with certainty and a
priority above the RulePolicy, so the bot does not answer an angry or at-risk customer with a routine reply. The
escalation configuration (``data/escalation.yml``) is stored inside the trained model.

The decision is made once, here: on every customer message the prediction carries a ``SlotSet`` of
``escalation_decision`` (bot/shared/frustration/decision.py) in its ``events``, which Rasa 3.6 applies whichever
policy wins, so ``action_handoff_to_human`` reads reason and priority instead of scoring again - also when a rule
(explicit request, complaint) chose the action.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from bot.shared.frustration.decision import DECISION_SLOT, decide
from bot.shared.frustration.escalation import EscalationConfig, EscalationEngine
from bot.shared.tracker_events import as_dicts

HANDOFF_ACTION = "action_handoff_to_human"
CONFIG_FILE = "escalation.yml"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True)
class EscalationPolicy(Policy):
    """Predicts the handoff when the conversation must go to a human; abstains otherwise."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"priority": 7, "escalation_config": "data/escalation.yml", "tier_slot": "customer_tier",
                "handoff_slot": "handoff_active"}

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        engine: EscalationEngine | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, model_storage, resource, execution_context)
        self._engine = engine

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """The escalation file's content: Rasa's training cache keys on the config, not on files a component reads,
        and would otherwise keep a trained policy with stale thresholds and lists."""
        path = Path({**cls.get_default_config(), **config}["escalation_config"])
        return hashlib.sha256(path.read_bytes() if path.exists() else f"missing:{path}".encode()).hexdigest()

    def train(self, training_trackers: list[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        raw = Path(self.config["escalation_config"]).read_text(encoding="utf-8")
        self._engine = EscalationEngine(EscalationConfig.from_yaml(Path(self.config["escalation_config"])))
        with self._model_storage.write_to(self._resource) as directory:
            (Path(directory) / CONFIG_FILE).write_text(raw, encoding="utf-8")
        return self._resource

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> EscalationPolicy:
        with model_storage.read_from(resource) as directory:
            engine = EscalationEngine(EscalationConfig.from_yaml(Path(directory) / CONFIG_FILE))
        return cls(config, model_storage, resource, execution_context, engine=engine)

    def assess(self, tracker: DialogueStateTracker) -> Any:
        """The escalation decision for the tracker's latest customer message."""
        return self._decide(tracker)[0]

    def _decide(self, tracker: DialogueStateTracker) -> Any:
        assert self._engine is not None
        return decide(self._engine, as_dicts(tracker.events), tracker.get_slot(self.config["tier_slot"]))

    def _should_escalate(self, tracker: DialogueStateTracker, decision: Any) -> bool:
        if tracker.get_slot(self.config["handoff_slot"]) or not decision.should_escalate:
            return False
        # Inside a form, answers such as a bare order number or phone digits often look like NLU fallbacks; the
        # form validates them itself, so failures alone do not count there (feelings and risks still do).
        fired = set(decision.signals.get("fired") or [decision.reason_code])
        return not (tracker.active_loop_name and fired <= {"repeated_failure"})

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        probabilities = self._default_predictions(domain)
        if self._engine is None or HANDOFF_ACTION not in domain.action_names_or_texts:
            return self._prediction(probabilities)
        latest = tracker.latest_action_name
        if latest == HANDOFF_ACTION:
            probabilities[domain.index_for_action(ACTION_LISTEN_NAME)] = 1.0
            return self._prediction(probabilities, is_no_user_prediction=True)
        if not (latest == ACTION_LISTEN_NAME and tracker.latest_message is not None and tracker.latest_message.text):
            return self._prediction(probabilities)
        decision, record = self._decide(tracker)
        # Recorded whichever policy wins (Rasa 3.6 applies every prediction's events): the handoff action reads it.
        events = [SlotSet(DECISION_SLOT, record)] if any(slot.name == DECISION_SLOT for slot in domain.slots) else []
        if not self._should_escalate(tracker, decision):
            return self._prediction(probabilities, events=events)
        probabilities[domain.index_for_action(HANDOFF_ACTION)] = 1.0
        # Marked as a "no user" prediction so that it also overrides an active form's happy path (the ensemble
        # lets such predictions outrank everything else; our priority then wins among them).
        return self._prediction(probabilities, events=events, is_no_user_prediction=True)
