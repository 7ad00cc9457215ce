"""Run the fake phones: ``python -m tools.fake_phones --port 8010 --gateway http://127.0.0.1:8000``.

The channel settings (``TELEGRAM_*``, ``WHATSAPP_*``, ``WECHAT_*``) come from the environment, as the gateway reads
them; ``make run`` with ``FAKE_PHONES=1`` sets them (tools/fake_phones/demo.py). Refuses (exit 2) a non-loopback
``--host`` or gateway, and channel settings whose API base is not this server's fake API.
"""
from __future__ import annotations

import argparse
import ipaddress
import sys

from tools.fake_phones.demo import DEFAULT_PORT, base_url


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback only (anything else is refused)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--gateway", default="http://127.0.0.1:8000", help="the local gateway's base URL")
    args = parser.parse_args(argv)
    if not loopback(args.host):
        print(f"fake phones refuse to listen on {args.host}: they are a local demo and bind loopback only "
              "(never start them in a production configuration)", file=sys.stderr)
        return 2
    import uvicorn  # noqa: PLC0415 - not needed to refuse

    from channels.settings import ChannelSettings  # noqa: PLC0415
    from tools.fake_phones.server import NotLocal, create_app  # noqa: PLC0415

    try:
        app = create_app(ChannelSettings(), args.gateway, base_url(args.port))
    except NotLocal as exc:
        print(f"fake phones refused: {exc}", file=sys.stderr)
        return 2
    if not app.state.phones:
        print("fake phones: no Telegram, WhatsApp or WeChat channel is enabled (FAKE_PHONES=1 make run sets them)",
              file=sys.stderr)
        return 2
    uvicorn.run(app, host="127.0.0.1" if args.host == "localhost" else args.host, port=args.port,
                log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
