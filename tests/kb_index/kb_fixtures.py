"""Fixture KB for the kb_index tests (a helper module, imported by conftest and the tests)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

FIXTURE_ARTICLES: dict[str, list[dict[str, Any]]] = {
    "returns.yml": [
        {
            "id": "returns-window",
            "title": {"zh": "七天无理由退货", "en": "No-reason return window"},
            "answer": {
                "zh": "签收后 7 天内可以无理由退货，商品需未使用且吊牌完好。",
                "en": "You can return an item within 7 days of delivery without giving a reason, "
                "if it is unused with its tags on.",
            },
            "questions": {
                "zh": ["收到货几天内可以退？", "七天无理由退货怎么算"],
                "en": ["How many days do I have to return something?", "What is your return policy?"],
            },
            "tags": ["returns"],
            "last_reviewed": dt.date(2026, 11, 1),
        },
        {
            "id": "returns-shipping-fee",
            "title": {"zh": "退货运费由谁承担", "en": "Who pays return shipping"},
            "answer": {
                "zh": "无理由退货的寄回运费由您承担；质量问题的来回运费由商城承担。",
                "en": "For no-reason returns you pay the return postage; for faulty items the store pays both ways.",
            },
            "questions": {
                "zh": ["退货要我自己出运费吗", "寄回去的快递费谁付"],
                "en": ["Do I pay for return shipping?", "Who covers the postage when I send it back?"],
            },
            "tags": ["returns", "shipping-fee"],
            "last_reviewed": dt.date(2026, 11, 1),
        },
    ],
    "service.yml": [
        {
            "id": "refund-bank-card",
            "title": {"zh": "退款到银行卡的时间", "en": "Refund time to a bank card"},
            "answer": {
                "zh": "退款原路退回银行卡，审核通过后 3-7 个工作日到账。",
                "en": "Refunds to a bank card arrive within 3-7 business days after approval.",
            },
            "questions": {
                "zh": ["退款到银行卡要多久", "钱什么时候退回我的卡里"],
                "en": ["How long does a refund to my bank card take?", "When will the money be back on my card?"],
            },
            "tags": ["refunds"],
            "last_reviewed": dt.date(2026, 11, 1),
        },
        {
            "id": "invoice-request",
            "title": {"zh": "如何申请发票", "en": "How to request an invoice"},
            "answer": {
                "zh": "签收后 30 天内可在订单页申请电子发票，3 个工作日内开具。",
                "en": "Request an electronic invoice on the order page within 30 days of delivery; "
                "it is issued within 3 business days.",
            },
            "questions": {
                "zh": ["怎么开发票", "发票在哪里申请"],
                "en": ["How do I get an invoice?", "Where can I request a receipt for my order?"],
            },
            "tags": ["invoices"],
            "last_reviewed": dt.date(2026, 11, 1),
        },
        {
            "id": "service-hours",
            "title": {"zh": "人工客服服务时间", "en": "Human agent service hours"},
            "answer": {
                "zh": "人工客服每天 9:00-21:00（北京时间）在线。",
                "en": "Human agents are available every day from 09:00 to 21:00 China time.",
            },
            "questions": {
                "zh": ["人工客服几点上班", "你们客服什么时候在线"],
                "en": ["What are your customer service hours?", "When can I talk to a person?"],
            },
            "tags": ["service"],
            "last_reviewed": dt.date(2026, 11, 1),
        },
    ],
}


def write_kb(directory: Path, files: dict[str, list[dict[str, Any]]], category: str = "fixture") -> Path:
    """Write ``files`` (name -> articles) as KB YAML files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, articles in files.items():
        doc = {"category": category, "articles": articles}
        (directory / name).write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return directory
