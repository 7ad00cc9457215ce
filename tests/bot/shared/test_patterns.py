"""Identifier extraction (order / tracking / phone numbers) in both languages, formats from the policy file."""
from pathlib import Path

import pytest
import yaml

from bot.shared.identifier_formats import POLICY_PATH, get_identifier_formats, load_identifier_formats
from bot.shared.patterns import compile_patterns, find_identifiers


def _found(text: str) -> list:
    return [(m.entity, m.value) for m in find_identifiers(text)]


def test_order_number_inside_chinese_text() -> None:
    assert _found("我的订单DM2026110512到哪了") == [("order_number", "DM2026110512")]


def test_lowercase_and_fullwidth_order_numbers_are_normalised() -> None:
    assert _found("order dm2026110512 pls") == [("order_number", "DM2026110512")]
    assert _found("订单ＤＭ２０２６１１０５１２") == [("order_number", "DM2026110512")]


def test_tracking_numbers_of_each_carrier_and_phone() -> None:
    text = "SF123456789012 / JD1234567890123 / 75312345678901 电话13812345678"
    assert _found(text) == [
        ("tracking_number", "SF123456789012"),
        ("tracking_number", "JD1234567890123"),
        ("tracking_number", "75312345678901"),
        ("phone", "13812345678"),
    ]


def test_wrong_lengths_are_not_identifiers() -> None:
    assert _found("DM20261105 or DM202611051299") == []
    assert _found("call 1381234567") == []


def test_offsets_point_into_the_original_text() -> None:
    text = "请查一下ＤＭ２０２６１１０５１２"
    (match,) = find_identifiers(text)
    assert text[match.start : match.end] == "ＤＭ２０２６１１０５１２"


def test_formats_are_the_policy_files() -> None:
    policy = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))
    formats = get_identifier_formats()
    assert formats.order_number == policy["identifiers"]["order_number"]["pattern"]
    assert formats.phone == policy["identifiers"]["phone"]["pattern"]
    assert formats.verification_digits == policy["identifiers"]["phone"]["verification_digits"]
    assert dict(formats.tracking) == {k: v["tracking_pattern"] for k, v in policy["carriers"].items()}


def test_another_merchants_formats_come_from_its_policy_file(tmp_path: Path) -> None:
    policy = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))
    policy["identifiers"]["order_number"]["pattern"] = "^OR[0-9]{6}$"
    policy["identifiers"]["order_number"]["example"] = "OR123456"
    policy["carriers"] = {"yto": {"name_zh": "圆通", "name_en": "YTO", "tracking_pattern": "^YT[0-9]{13}$"}}
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    patterns = compile_patterns(load_identifier_formats(path))
    found = find_identifiers("订单or123456, 运单YT1234567890123, DM2026110512", patterns)
    assert [(m.entity, m.value) for m in found] == [
        ("order_number", "OR123456"), ("tracking_number", "YT1234567890123")]


def test_a_format_without_anchors_is_refused_at_load(tmp_path: Path) -> None:
    policy = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))
    policy["identifiers"]["order_number"]["pattern"] = "DM[0-9]{10}"
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match="identifiers.order_number.pattern"):
        load_identifier_formats(path)
