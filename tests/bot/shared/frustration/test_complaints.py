"""Repeat and group complaints against a real redis-server (tests/conftest.py starts it; missing = failure)."""
from __future__ import annotations

from typing import Any

import pytest

from bot.shared.frustration import keys
from bot.shared.frustration.complaints import ComplaintConfig, ComplaintTracker, ProblemKey
from bot.shared.frustration.escalation import EscalationConfig

DAY = 24 * 3600


class Clock:
    """A settable clock, so sliding windows are tested without sleeping."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def config() -> ComplaintConfig:
    """The shipped thresholds of data/escalation.yml (3 complaints / 7 days, 5 customers / 1 hour)."""
    return ComplaintConfig.from_dict(EscalationConfig.from_yaml().complaints)


def test_shipped_thresholds_match_the_service_plan(config: ComplaintConfig) -> None:
    assert (config.repeat_threshold, config.repeat_window_seconds) == (3, 7 * DAY)
    assert (config.group_threshold, config.group_window_seconds) == (5, 3600)


def test_third_complaint_within_seven_days_flags_customer_and_order(redis_client: Any, config: ComplaintConfig) -> None:
    clock = Clock()
    tracker = ComplaintTracker(redis_client, config, clock)
    first = tracker.record_complaint("cust-1", "DM2026110512", complaint_id="c1")
    clock.now += 2 * DAY
    second = tracker.record_complaint("cust-1", "DM2026110512", complaint_id="c2")
    clock.now += 3 * DAY
    third = tracker.record_complaint("cust-1", "DM2026110512", complaint_id="c3")
    assert (first.count, first.flagged, second.flagged) == (1, False, False)
    assert (third.count, third.flagged, third.newly_flagged) == (3, True, True)
    assert tracker.is_repeat_complainer("cust-1", "DM2026110512")

    key = keys.repeat_complaints("cust-1", "DM2026110512")
    assert redis_client.zrange(key, 0, -1) == ["c1", "c2", "c3"]
    assert 0 < redis_client.ttl(key) <= 7 * DAY
    flags = tracker.recent_repeat_flags()
    assert len(flags) == 1
    assert flags[0]["customer_id"] == "cust-1" and flags[0]["order_number"] == "DM2026110512"
    assert flags[0]["complaints"] == 3

    fourth = tracker.record_complaint("cust-1", "DM2026110512", complaint_id="c4")
    assert fourth.flagged and not fourth.newly_flagged
    assert len(tracker.recent_repeat_flags()) == 1, "one supervisor entry per window"


def test_complaints_spread_beyond_the_window_do_not_flag(redis_client: Any, config: ComplaintConfig) -> None:
    clock = Clock()
    tracker = ComplaintTracker(redis_client, config, clock)
    for i in range(3):
        result = tracker.record_complaint("cust-2", "DM2026110513", complaint_id=f"c{i}")
        clock.now += 4 * DAY
    assert result.count == 2 and not result.flagged
    assert redis_client.zrange(keys.repeat_complaints("cust-2", "DM2026110513"), 0, -1) == ["c1", "c2"]
    assert tracker.recent_repeat_flags() == []


def test_other_orders_and_other_customers_are_counted_separately(redis_client: Any, config: ComplaintConfig) -> None:
    tracker = ComplaintTracker(redis_client, config, Clock())
    tracker.record_complaint("cust-3", "DM0000000001")
    tracker.record_complaint("cust-3", "DM0000000002")
    tracker.record_complaint("cust-4", "DM0000000001")
    assert not tracker.is_repeat_complainer("cust-3", "DM0000000001")
    assert redis_client.zcard(keys.repeat_complaints("cust-3", "DM0000000001")) == 1


def test_five_customers_on_one_hub_within_an_hour_raise_one_alert(redis_client: Any, config: ComplaintConfig) -> None:
    clock = Clock()
    tracker = ComplaintTracker(redis_client, config, clock)
    hub = ProblemKey("carrier_hub", "ZTO Hangzhou Hub")
    results = []
    for i in range(4):
        results.append(tracker.report_problem(f"cust-{i}", hub))
        clock.now += 10 * 60
    results.append(tracker.report_problem("cust-0", ProblemKey("carrier_hub", "zto  hangzhou hub")))  # same customer
    assert [r.distinct_customers for r in results] == [1, 2, 3, 4, 4]
    assert all(r.alert_id is None for r in results)

    fifth = tracker.report_problem("cust-4", hub, detail="parcels stuck since Monday")
    assert fifth.distinct_customers == 5 and fifth.alert_id is not None and fifth.alert_active
    sixth = tracker.report_problem("cust-5", hub)
    assert sixth.alert_id is None and sixth.alert_active, "one alert per window"

    alerts = tracker.recent_incident_alerts()
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["id"] == fifth.alert_id
    assert (alert["problem_kind"], alert["problem_value"], alert["customers"]) == ("carrier_hub", "zto hangzhou hub", 5)
    assert alert["detail"] == "parcels stuck since Monday"
    assert sorted(alert["sample_customers"]) == ["cust-0", "cust-1", "cust-2", "cust-3", "cust-4"]
    assert redis_client.xlen(keys.INCIDENT_ALERTS_STREAM) == 1
    assert 0 < redis_client.ttl(keys.incident_alert_claim("carrier_hub", "zto hangzhou hub")) <= 3600


def test_reports_older_than_the_window_do_not_count(redis_client: Any, config: ComplaintConfig) -> None:
    clock = Clock()
    tracker = ComplaintTracker(redis_client, config, clock)
    batch = ProblemKey("batch", "B2026-11-07")
    for i in range(4):
        tracker.report_problem(f"early-{i}", batch)
    clock.now += 3601
    late = tracker.report_problem("late-1", batch)
    assert late.distinct_customers == 1 and late.alert_id is None
    assert redis_client.zrange(keys.incident_reports("batch", "b2026-11-07"), 0, -1) == ["late-1"]


def test_different_problem_keys_do_not_mix(redis_client: Any, config: ComplaintConfig) -> None:
    tracker = ComplaintTracker(redis_client, config, Clock())
    for i in range(4):
        tracker.report_problem(f"c{i}", ProblemKey("product", "SKU-1"))
    other = tracker.report_problem("c9", ProblemKey("product", "SKU-2"))
    assert other.distinct_customers == 1
    assert tracker.recent_incident_alerts() == []


def test_key_parts_are_encoded_so_ids_cannot_collide() -> None:
    assert keys.repeat_complaints("a:b", "c") != keys.repeat_complaints("a", "b:c")
    assert keys.repeat_complaints("a:b", "c").startswith("csbot:complaints:repeat:")


def test_invalid_input_is_rejected(redis_client: Any, config: ComplaintConfig) -> None:
    tracker = ComplaintTracker(redis_client, config, Clock())
    with pytest.raises(ValueError):
        ProblemKey("warehouse", "x")
    with pytest.raises(ValueError):
        tracker.record_complaint(" ", "DM2026110512")
    with pytest.raises(ValueError):
        ComplaintConfig.from_dict({"repeat_threshold": 1})
