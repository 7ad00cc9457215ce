"""``FAKE_PHONES``: which fake phones ``make run`` starts, and the demo channel settings the gateway gets for them.

| variable | default | meaning |
|---|---|---|
| FAKE_PHONES | (empty = off) | `1`: fake phones for Telegram, WhatsApp, WeChat; or some (`telegram,whatsapp`) |
| FAKE_PHONES_PORT | 8010 | port of the fake phones and the fake platform APIs (127.0.0.1 only) |

Local demo only: refused when one of those channels' own variables is set.

The channel credentials are random per run and the platform API bases point at the fake phones' own fake APIs, so a
demo can never reach a real platform; a channel a merchant configured (any of its variables set) is never replaced:
the launcher refuses to start instead (fake phones are not for a production configuration).
"""
from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping

PLATFORMS = ("telegram", "whatsapp", "wechat")
DEFAULT_PORT = 8010
# Every variable of a channel's section in channels/settings.py: any of them set means someone configured it.
CHANNEL_VARIABLES = {
    "telegram": ("TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "TELEGRAM_API_BASE"),
    "whatsapp": ("WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "WHATSAPP_PHONE_NUMBER_ID",
                 "WHATSAPP_API_BASE"),
    "wechat": ("WECHAT_APP_ID", "WECHAT_APP_SECRET", "WECHAT_TOKEN", "WECHAT_ENCODING_AES_KEY", "WECHAT_API_BASE"),
}
WHATSAPP_API_VERSION = "v21.0"


class FakePhonesRefused(ValueError):
    """The configuration is not a local demo (or FAKE_PHONES names no known platform)."""


def chosen(value: str | None) -> list[str]:
    """The platforms FAKE_PHONES asks for ([] when off)."""
    value = (value or "").strip().lower()
    if value in ("", "0", "false", "off", "no"):
        return []
    if value in ("1", "true", "on", "yes", "all"):
        return list(PLATFORMS)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in PLATFORMS]
    if unknown or not names:
        raise FakePhonesRefused(f"FAKE_PHONES: unknown platform {', '.join(unknown) or repr(value)} "
                                f"(choose from {', '.join(PLATFORMS)}, or 1 for all)")
    return [p for p in PLATFORMS if p in names]


def port(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    try:
        value = int(environ.get("FAKE_PHONES_PORT") or DEFAULT_PORT)
    except ValueError as exc:
        raise FakePhonesRefused("FAKE_PHONES_PORT must be a port number") from exc
    if not 1 <= value <= 65535:
        raise FakePhonesRefused("FAKE_PHONES_PORT must be a port number")
    return value


def base_url(phones_port: int) -> str:
    return f"http://127.0.0.1:{phones_port}"


def demo_env(platforms: list[str], phones_port: int, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The channel variables that turn ``platforms`` on against the fake phones' APIs (fresh random secrets).

    Refuses (FakePhonesRefused) when any variable of one of those channels is already set: that channel is
    configured - possibly for real - and a demo must neither replace it nor run beside it."""
    environ = os.environ if environ is None else environ
    for platform in platforms:
        taken = [name for name in CHANNEL_VARIABLES[platform] if environ.get(name)]
        if taken:
            raise FakePhonesRefused(
                f"FAKE_PHONES would stand in for {platform}, but {', '.join(taken)} is set: fake phones are for the "
                "local demo only and never run next to a configured channel; unset FAKE_PHONES or those variables")
    base = base_url(phones_port)
    env: dict[str, str] = {}
    if "telegram" in platforms:
        env |= {"TELEGRAM_BOT_TOKEN": f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(24)}",
                "TELEGRAM_WEBHOOK_SECRET": secrets.token_urlsafe(24),
                "TELEGRAM_API_BASE": f"{base}/telegram"}
    if "whatsapp" in platforms:
        env |= {"WHATSAPP_ACCESS_TOKEN": "EAAG" + secrets.token_urlsafe(32),
                "WHATSAPP_APP_SECRET": secrets.token_hex(16),
                "WHATSAPP_VERIFY_TOKEN": secrets.token_urlsafe(16),
                "WHATSAPP_PHONE_NUMBER_ID": str(10**14 + secrets.randbelow(9 * 10**14)),
                "WHATSAPP_API_BASE": f"{base}/whatsapp/{WHATSAPP_API_VERSION}"}
    if "wechat" in platforms:
        env |= {"WECHAT_APP_ID": "wx" + secrets.token_hex(8),
                "WECHAT_APP_SECRET": secrets.token_hex(16),
                "WECHAT_TOKEN": secrets.token_urlsafe(16),
                # safe mode (安全模式): every callback encrypted, as most accounts run
                "WECHAT_ENCODING_AES_KEY": base64.b64encode(secrets.token_bytes(32)).decode().rstrip("="),
                "WECHAT_API_BASE": f"{base}/wechat"}
    return env
