"""REDIS_URL's Sentinel form (bot/shared/redis_url.py): parsed the same way in both environments."""
from __future__ import annotations

import pytest

from bot.shared.redis_url import limits_uri, parse_sentinel_url


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_password() -> None:
    parsed = parse_sentinel_url("redis+sentinel://:p%40ss@127.0.0.8:26380,127.0.0.9,h3:1/csbot")
    assert parsed is not None
    assert parsed.sentinels == (("127.0.0.8", 26380), ("127.0.0.9", 26379), ("h3", 1))
    assert parsed.service == "csbot"
    assert parsed.auth() == {"password": "p@ss"}


def test_other_urls_are_one_server() -> None:
    assert parse_sentinel_url("redis://:pw@127.0.0.1:6379/0") is None
    assert limits_uri("redis://127.0.0.1:6379/0") == "async+redis://127.0.0.1:6379/0"
    assert limits_uri("redis+sentinel://h:1/csbot") == "async+redis+sentinel://h:1/csbot"


@pytest.mark.parametrize("url", ["redis+sentinel://h:1", "redis+sentinel://h:1/a/0", "redis+sentinel:///csbot",
                                 "redis+sentinel://h:notaport/csbot"])
def test_a_malformed_sentinel_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_sentinel_url(url)
