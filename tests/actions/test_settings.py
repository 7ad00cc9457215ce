"""The action server's one settings class (actions/settings.py): every variable named, described and read."""
from __future__ import annotations

import re

import pytest
from pydantic import AliasChoices

from actions.settings import ActionServerSettings, get_settings
from bot.shared.paths import REPO_ROOT

# The environment variables the action server read before its settings were merged (names must not change).
ENV_NAMES = {
    "ACTION_SERVER_HOST", "ACTION_SERVER_PORT", "ACTION_SERVER_TOKEN", "REDIS_URL",
    "DATABASE_URL", "ORDERS_DATABASE_URL", "ORDERS_BACKEND", "ORDERS_POLICY_PATH", "ORDERS_MERCHANT_API_URL",
    "ORDERS_MERCHANT_API_TOKEN", "ORDERS_MERCHANT_API_TIMEOUT_S", "ORDERS_MERCHANT_API_RETRIES",
    "ORDERS_MERCHANT_API_BACKOFF_S", "ORDERS_DB_STATEMENT_TIMEOUT_MS", "ORDERS_DB_ECHO",
    "CUSTOMER_TOKEN_SECRET", "VERIFICATION_MAX_ATTEMPTS", "VERIFICATION_LOCK_MINUTES", "ORDER_LOOKUP_TIMEOUT_S",
    "VERIFICATION_IDLE_MINUTES", "VERIFICATION_ORDER_DAILY_LIMIT", "VERIFICATION_CLIENT_LIMIT",
    "HANDOFF_URL", "HANDOFF_INTERNAL_TOKEN", "HANDOFF_TIMEOUT_S", "HANDOFF_UNDELIVERED_MAXLEN",
    "KB_RECORDS_RETENTION_S", "METRICS_TOKEN",  # Prometheus /metrics bearer token (unset: the endpoint is off)
}


def test_every_field_names_its_variable_and_describes_it() -> None:
    names = set()
    for field_name, field in ActionServerSettings.model_fields.items():
        assert isinstance(field.validation_alias, AliasChoices), field_name
        names.update(str(choice) for choice in field.validation_alias.choices)
        assert field.description and len(field.description) > 10, field_name
    assert names == ENV_NAMES


def test_variables_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {"ACTION_SERVER_PORT": "6055", "ORDERS_BACKEND": "http", "ORDERS_MERCHANT_API_RETRIES": "5",
              "VERIFICATION_MAX_ATTEMPTS": "4", "ORDER_LOOKUP_TIMEOUT_S": "0.5", "HANDOFF_URL": "http://desk:1",
              "HANDOFF_UNDELIVERED_MAXLEN": "7", "CUSTOMER_TOKEN_SECRET": "s3", "REDIS_URL": "redis://r:1/2"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    s = ActionServerSettings(_env_file=None)  # type: ignore[call-arg]
    assert (s.action_server_port, s.backend, s.merchant_api_retries, s.max_attempts, s.backend_timeout_s,
            s.handoff_url, s.handoff_undelivered_maxlen) == (6055, "http", 5, 4, 0.5, "http://desk:1", 7)
    assert s.customer_token_secret is not None and s.customer_token_secret.get_secret_value() == "s3"
    assert s.redis_url == s.redis_url_if_set() == "redis://r:1/2"
    assert s.store_limits().order == "4/15 minutes;10/day"


def test_defaults_and_names_in_code(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    s = ActionServerSettings(_env_file=None)  # type: ignore[call-arg]
    assert s.redis_url == "redis://127.0.0.1:6379/0" and s.redis_url_if_set() is None  # KB feedback off
    assert s.database_url.endswith("var/store.db") and s.backend == "sql" and s.action_server_host == "127.0.0.1"
    assert ActionServerSettings(backend="http", _env_file=None).backend == "http"  # type: ignore[call-arg]
    monkeypatch.setenv("ORDERS_DATABASE_URL", "sqlite:///other.db")
    assert ActionServerSettings(_env_file=None).database_url == "sqlite:///other.db"  # type: ignore[call-arg]


def test_one_cached_instance_for_the_process() -> None:
    from actions import handoff, verification

    assert handoff.settings is get_settings and verification.flow_settings is get_settings
    assert get_settings() is get_settings()


def test_the_action_server_reads_no_environment_variable_outside_its_settings() -> None:
    offenders = []
    for path in sorted((REPO_ROOT / "actions").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if re.search(r"os\.environ|os\.getenv|getenv\(", text):
            offenders.append(path.relative_to(REPO_ROOT).as_posix())
        if path.name != "settings.py" and re.search(r"\(BaseSettings\)", text):
            offenders.append(f"{path.relative_to(REPO_ROOT).as_posix()} (a second settings class)")
    assert offenders == []
