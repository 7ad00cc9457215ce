"""Signed customer tokens: round trip, tampering, expiry, wrong secret, garbage input, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from actions.customer_token import mint, verify
from bot.shared.paths import REPO_ROOT

SECRET = "unit-test-secret"  # noqa: S105 - test value
NOW = 1_800_000_000
ROOT = REPO_ROOT


def test_round_trip() -> None:
    assert verify(mint(42, NOW + 60, SECRET), SECRET, now=NOW) == 42


def test_expired_token_is_rejected() -> None:
    assert verify(mint(42, NOW, SECRET), SECRET, now=NOW) is None


def test_wrong_secret_or_no_secret_is_rejected() -> None:
    token = mint(42, NOW + 60, SECRET)
    assert verify(token, "other", now=NOW) is None
    assert verify(token, None, now=NOW) is None
    assert verify(token, "", now=NOW) is None


def test_changing_the_customer_or_expiry_breaks_the_signature() -> None:
    _, expires, signature = mint(42, NOW + 60, SECRET).split(".")
    assert verify(f"43.{expires}.{signature}", SECRET, now=NOW) is None
    assert verify(f"42.{int(expires) + 3600}.{signature}", SECRET, now=NOW) is None


@pytest.mark.parametrize("token", [None, 42, "", "a.b.c", "1.2", "0.99999999999.x", "-1.2.3", "1.2.3.4", "x" * 10_000,
                                   "４２.1800000060.abc"])
def test_garbage_is_rejected_without_raising(token: object) -> None:
    assert verify(token, SECRET, now=NOW) is None


def test_minting_needs_a_secret_and_a_positive_customer() -> None:
    with pytest.raises(ValueError):
        mint(1, NOW, "")
    with pytest.raises(ValueError):
        mint(0, NOW, SECRET)


def test_cli_mints_a_token_the_verifier_accepts() -> None:
    env = {**os.environ, "CUSTOMER_TOKEN_SECRET": SECRET, "PYTHONPATH": str(ROOT)}
    minted = subprocess.run([sys.executable, "-m", "actions.customer_token", "mint", "--customer-id", "7"],
                            capture_output=True, text=True, env=env, check=True, cwd=ROOT)
    token = minted.stdout.strip()
    assert verify(token, SECRET) == 7
    checked = subprocess.run([sys.executable, "-m", "actions.customer_token", "verify", token],
                             capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    assert (checked.returncode, checked.stdout.strip()) == (0, "7")
    bad = subprocess.run([sys.executable, "-m", "actions.customer_token", "verify", token + "x"],
                         capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    assert bad.returncode == 1
