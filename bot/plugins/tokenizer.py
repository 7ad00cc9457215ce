"""Rasa graph component: jieba word segmentation for mixed Chinese/English text.

Rasa's ``JiebaTokenizer`` keeps the whitespace between English words as tokens (" "), which only adds noise to
the word features; this subclass drops them and maps full-width characters typed by Chinese IMEs to ASCII
(same length, so token offsets stay valid for entity extraction).
"""
from __future__ import annotations

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.shared.nlu.training_data.message import Message

from bot.shared.patterns import PATTERNS
from bot.shared.text import to_halfwidth

# Identifiers become placeholder tokens for the intent features: "DM2026110512" and "dm2026031488" then look the
# same to the classifier (a bare order number is an order number, whatever its digits). Entities are extracted
# from the raw text by IdentifierExtractor, so nothing is lost.
_PLACEHOLDERS = {"order_number": "__order_number__", "tracking_number": "__tracking_number__", "phone": "__phone__"}


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=True)
class BilingualTokenizer(JiebaTokenizer):
    """jieba for Chinese spans, whitespace/punctuation split for Latin text, no blank tokens."""

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        import jieba

        text = to_halfwidth(message.get(attribute) or "")
        tokens = [Token(_placeholder(word), start, end) for word, start, end in jieba.tokenize(text) if word.strip()]
        return self._apply_token_pattern(tokens)


def _placeholder(word: str) -> str:
    for entity, pattern in PATTERNS:
        if pattern.fullmatch(word):
            return _PLACEHOLDERS[entity]
    return "__number__" if word.isdigit() else word
