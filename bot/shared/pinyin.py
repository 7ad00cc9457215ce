"""Chinese words typed in pinyin, read back into characters: "tuihuo yunfei who pays" -> "退货 运费 who pays".

Customers who write English (or type without a Chinese keyboard) often name the store's things in toneless pinyin:
tuihuo, fahuo, baoyou, fapiao, quxiao dingdan, qitian wuliyou. Neither the sentence encoder nor the NLU reads those
as the Chinese words they are, so the question is declined or misread. This reader maps them back, from a
vocabulary - never from a word list written for it:

* the **vocabulary** is the Chinese words (two characters or more, jieba-segmented) of the texts it is given - the
  knowledge base's own articles and questions - each keyed by its toneless pinyin without separators (pypinyin,
  phrase-aware, so 银行 is "yinhang"); where two words share a key, the more frequent one wins;
* a run of one to four Latin tokens whose joined lower-case form is a key becomes that word, longest run first;
* a token that is an English word (of the word lists or texts given) is never rewritten, alone or as part of a
  run, so "change", "men" or "women" stay English.

Pure code (jieba and pypinyin only), used by the knowledge base's retriever; runs on Python 3.10 and 3.11.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_HAN = re.compile(r"^[\u4e00-\u9fff]+$")
_LATIN_RUN = re.compile(r"[A-Za-z]+(?:[ \t]+[A-Za-z]+)*")
_WORD = re.compile(r"[A-Za-z]+")
MAX_TOKENS = 4  # a word of up to four syllables typed with spaces between them ("qi tian wu li you" is two words)


def _pinyin_key(word: str) -> str:
    from pypinyin import Style, lazy_pinyin

    return "".join(lazy_pinyin(word, style=Style.NORMAL, errors="ignore")).lower()


class PinyinReader:
    """Rewrites toneless pinyin words of a text into the Chinese words of a vocabulary (see the module doc)."""

    def __init__(self, chinese_texts: Iterable[str], english_words: Iterable[str] = ()) -> None:
        import jieba

        counts: Counter[str] = Counter()
        for text in chinese_texts:
            counts.update(w for w in jieba.lcut(text) if len(w) >= 2 and _HAN.match(w))
        table: dict[str, tuple[int, str]] = {}
        for word, count in counts.items():
            key = _pinyin_key(word)
            if len(key) >= 4 and (key not in table or count > table[key][0]):
                table[key] = (count, word)
        self.english = {w.lower() for text in english_words for w in _WORD.findall(text)}
        self.table = {key: word for key, (_, word) in table.items() if key not in self.english}

    def __len__(self) -> int:
        return len(self.table)

    def _read_run(self, run: str) -> str:
        tokens = run.split()
        out: list[str] = []
        i = 0
        while i < len(tokens):
            for j in range(min(len(tokens), i + MAX_TOKENS), i, -1):
                part = [t.lower() for t in tokens[i:j]]
                word = self.table.get("".join(part))
                if word and not any(t in self.english for t in part):
                    out.append(word)
                    i = j
                    break
            else:
                out.append(tokens[i])
                i += 1
        return " ".join(out)

    def read(self, text: str) -> str:
        """``text`` with its pinyin words in characters (unchanged when it has none)."""
        if not self.table:
            return text
        return _LATIN_RUN.sub(lambda m: self._read_run(m.group(0)), text)
