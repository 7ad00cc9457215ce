"""Identifier extraction (order / tracking / phone numbers) in both languages."""
from bot.shared.patterns import find_identifiers, normalize_order_number


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


def test_normalize_order_number_rejects_unsafe_input() -> None:
    assert normalize_order_number(" dm2026110512 ") == "DM2026110512"
    assert normalize_order_number("DM2026110512' OR 1=1 --") is None
    assert normalize_order_number("<script>DM2026110512</script>") is None
