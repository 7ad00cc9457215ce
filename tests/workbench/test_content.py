"""The workbench's article store on a copy of data/kb and a fresh database (SQLite, and PostgreSQL through the
order tests' throwaway server): the files round trip byte for byte, every save is a version with author, time and
diff, bad edits save nothing, a stale base version is a conflict (also when two saves race), hand edits of the files
become versions and are never written over, restore."""
from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.shared.paths import REPO_ROOT
from kb_index.content import content_hash, load_articles
from tests.actions.orders.conftest import (  # noqa: F401 - the session's PostgreSQL server fixture
    _create_postgres_database,
    _drop_postgres_database,
    postgres_server_url,
)
from workbench import articles as kb
from workbench.content import Conflict, ContentStore
from workbench.db import make_engine

KB = REPO_ROOT / "data" / "kb"
ARTICLE = "returns-no-reason-window"


@pytest.fixture
def kb_copy(tmp_path: Path) -> Path:
    target = tmp_path / "kb"
    shutil.copytree(KB, target)
    return target


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'wb.db'}"
        return
    url, admin = _create_postgres_database(request.getfixturevalue("postgres_server_url"))
    try:
        yield url
    finally:
        _drop_postgres_database(admin, url)


@pytest.fixture
def store(kb_copy: Path, database_url: str) -> Iterator[ContentStore]:
    engine = make_engine(database_url)
    content = ContentStore(engine, kb_copy)
    content.refresh()
    yield content
    engine.dispose()


def _form(article: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {k: json.loads(json.dumps(article[k])) for k in kb.EDITABLE}
    out.update(changes)
    return out


def test_every_file_of_data_kb_renders_back_byte_for_byte() -> None:
    for path in sorted(KB.glob("*.yml")):
        header, category, items = kb.read_file(path)
        assert kb.render_file(header, category, items) == path.read_text(encoding="utf-8"), path.name


def test_import_then_write_back_loses_nothing(store: ContentStore, kb_copy: Path) -> None:
    before = {p.name: p.read_bytes() for p in kb_copy.glob("*.yml")}
    n = len(load_articles(KB))
    assert len(store.search()) == n
    written = store.write_all()
    assert len(written) == len(before)
    assert {p.name: p.read_bytes() for p in kb_copy.glob("*.yml")} == before
    versions = store.versions(ARTICLE)
    assert [(v["version"], v["kind"], v["author"]) for v in versions] == [(1, "import", "files")]


def test_save_is_a_version_with_author_time_diff_and_the_file_written(store: ContentStore, kb_copy: Path) -> None:
    head = store.get(ARTICLE)
    others_before = content_hash([a for a in load_articles(kb_copy) if a.id != ARTICLE])
    answer = dict(head["article"]["answer"], en="Return any unused item with its tags within 7 days of delivery.")
    saved = store.save(ARTICLE, head["version"], _form(head["article"], answer=answer,
                                                        tags=["returns", "no-reason", "7-days", "window"]),
                       "alice", "editor")
    assert saved["version"] == 2 and saved["updated_by"] == "alice"
    latest = store.versions(ARTICLE)[0]
    assert latest["version"] == 2 and latest["author"] == "alice" and latest["kind"] == "edit"
    assert latest["created_at"] > 0
    assert "-      en: You can return an item for any reason" in latest["diff"]
    assert "+      en: Return any unused item with its tags within 7 days of delivery." in latest["diff"]
    assert "+    tags: [returns, no-reason, 7-days, window]" in latest["diff"]
    # The file: the edited article as saved (parsed by the index's own loader), every other article unchanged.
    loaded = {a.id: a for a in load_articles(kb_copy)}
    assert loaded[ARTICLE].answer.en == answer["en"] and "window" in loaded[ARTICLE].tags
    assert content_hash([a for a in loaded.values() if a.id != ARTICLE]) == others_before
    text = (kb_copy / "returns.yml").read_text(encoding="utf-8")
    assert text.startswith("# data/kb/returns.yml")  # the file's own comments stay


def test_bad_input_saves_nothing(store: ContentStore, kb_copy: Path) -> None:
    head = store.get(ARTICLE)
    before = (kb_copy / "returns.yml").read_bytes()
    other_question = store.get("returns-item-condition")["article"]["questions"]["zh"][0]
    bad = [
        {"answer": dict(head["article"]["answer"], zh="")},  # a language missing
        {"answer": dict(head["article"]["answer"], zh="签收后 10 天内可以退货。")},  # numbers differ from English
        {"questions": {"zh": ["只有一个问题？"], "en": head["article"]["questions"]["en"]}},
        {"questions": {"zh": [*head["article"]["questions"]["zh"], other_question],
                       "en": head["article"]["questions"]["en"]}},  # belongs to another article
        {"tags": ["Returns", "618"]},
        {"title": dict(head["article"]["title"], en="七天无理由")},
    ]
    for changes in bad:
        with pytest.raises(kb.ArticleProblems) as caught:
            store.save(ARTICLE, head["version"], _form(head["article"], **changes), "alice", "editor")
        assert caught.value.problems
    assert (kb_copy / "returns.yml").read_bytes() == before
    assert [v["version"] for v in store.versions(ARTICLE)] == [1]


def test_second_editor_on_a_stale_version_gets_a_conflict_not_a_lost_update(store: ContentStore) -> None:
    head = store.get(ARTICLE)
    alice = _form(head["article"], title={"zh": "七天无理由退货期限", "en": "No-reason return window"})
    bob = _form(head["article"], title={"zh": "七天无理由退货的时限", "en": "7-day no-reason returns"})
    assert store.save(ARTICLE, 1, alice, "alice", "editor")["version"] == 2
    with pytest.raises(Conflict) as caught:
        store.save(ARTICLE, 1, bob, "bob", "editor")
    conflict = caught.value
    assert conflict.current["version"] == 2 and conflict.current["updated_by"] == "alice"
    assert "+      zh: 七天无理由退货期限" in conflict.theirs
    assert "+      en: 7-day no-reason returns" in conflict.yours
    assert store.get(ARTICLE)["article"]["title"]["zh"] == "七天无理由退货期限"  # alice's edit stands
    # Bob re-applies his change on the current version: saved.
    assert store.save(ARTICLE, 2, _form(store.get(ARTICLE)["article"], title=bob["title"]), "bob",
                      "editor")["version"] == 3


def test_two_saves_racing_on_one_version_one_wins_one_conflicts(store: ContentStore) -> None:
    head = store.get(ARTICLE)
    forms = {name: _form(head["article"], tags=["returns", name]) for name in ("alice", "bob")}
    results: dict[str, object] = {}
    start = threading.Barrier(2)

    def save(name: str) -> None:
        start.wait()
        try:
            results[name] = store.save(ARTICLE, 1, forms[name], name, "editor")["version"]
        except Conflict as exc:
            results[name] = exc

    threads = [threading.Thread(target=save, args=(name,)) for name in forms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = [name for name, result in results.items() if result == 2]
    losers = [name for name, result in results.items() if isinstance(result, Conflict)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert store.get(ARTICLE)["article"]["tags"] == ["returns", winners[0]]
    assert [v["version"] for v in store.versions(ARTICLE)] == [2, 1]


def test_hand_edit_of_the_file_becomes_a_version_and_is_not_written_over(store: ContentStore, kb_copy: Path
                                                                          ) -> None:
    path = kb_copy / "returns.yml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    other = doc["articles"][1]["id"]
    text = path.read_text(encoding="utf-8").replace("- 用过了还能退吗？", "- 用过一次了还能退吗？")
    path.write_text(text, encoding="utf-8")
    head = store.get(ARTICLE)
    store.save(ARTICLE, head["version"], _form(head["article"], tags=["returns", "no-reason"]), "alice", "editor")
    assert store.get(other)["version"] == 2
    assert store.versions(other)[0]["author"] == "files" and store.versions(other)[0]["kind"] == "files"
    assert "- 用过一次了还能退吗？" in path.read_text(encoding="utf-8")


def test_restore_an_earlier_version(store: ContentStore, kb_copy: Path) -> None:
    original = store.get(ARTICLE)["article"]
    store.save(ARTICLE, 1, _form(original, tags=["returns"]), "alice", "editor")
    restored = store.restore(ARTICLE, 1, 2, "carol", "supervisor")
    assert restored["version"] == 3 and restored["article"] == original
    latest = store.versions(ARTICLE)[0]
    assert latest["kind"] == "restore" and latest["restored_from"] == 1 and latest["author"] == "carol"
    assert "+    tags: [returns, no-reason, 7-days]" in latest["diff"]
    assert (kb_copy / "returns.yml").read_bytes() == (KB / "returns.yml").read_bytes()
    with pytest.raises(Conflict):
        store.restore(ARTICLE, 2, 2, "carol", "supervisor")  # based on a version that is no longer current


def test_search_matches_titles_questions_and_tags_in_both_languages(store: ContentStore) -> None:
    assert ARTICLE in [a["id"] for a in store.search("无理由")]
    assert ARTICLE in [a["id"] for a in store.search("RETURN WINDOW")]
    assert ARTICLE in [a["id"] for a in store.search("7-days")]
    assert store.search("no article says this zzqx") == []
