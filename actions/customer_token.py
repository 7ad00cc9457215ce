"""Signed customer tokens: how the store's website vouches for a logged-in customer in chat metadata.

Format: ``<customer_id>.<expires_unix>.<signature>`` where the signature is the URL-safe base64 (no padding)
HMAC-SHA256 of ``"<customer_id>.<expires_unix>"`` under a secret shared with the website
(env ``CUSTOMER_TOKEN_SECRET``). Pure functions, no I/O: the website, the action server and tests share them.

    python -m actions.customer_token mint --customer-id 42 [--ttl-minutes 60]
    python -m actions.customer_token verify TOKEN
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import sys
import time
from collections.abc import Sequence

SECRET_ENV = "CUSTOMER_TOKEN_SECRET"  # noqa: S105 - the name of the variable, not a secret
MAX_TOKEN_LENGTH = 256  # anything longer is not one of ours; checked before any parsing
DEFAULT_TTL_MINUTES = 60  # CLI default for demo tokens only


def _signature(secret: str, customer_id: int, expires: int) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{customer_id}.{expires}".encode("ascii"), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def mint(customer_id: int, expires_at: int, secret: str) -> str:
    """A token for ``customer_id`` valid until the unix time ``expires_at``."""
    if not secret:
        raise ValueError("an empty secret cannot sign tokens")
    if customer_id <= 0:
        raise ValueError("customer_id must be positive")
    return f"{customer_id}.{expires_at}.{_signature(secret, customer_id, expires_at)}"


def verify(token: object, secret: str | None, now: float | None = None) -> int | None:
    """The customer id of a well-formed, correctly signed, unexpired token; None for anything else.

    Never raises on bad input: the token comes from the network. No secret configured means no token is trusted.
    """
    if not secret or not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    parts = token.split(".")
    if len(parts) != 3 or not (parts[0].isascii() and parts[0].isdigit() and parts[1].isascii() and parts[1].isdigit()):
        return None
    customer_id, expires = int(parts[0]), int(parts[1])
    if customer_id <= 0:
        return None
    if not hmac.compare_digest(parts[2], _signature(secret, customer_id, expires)):
        return None
    if (time.time() if now is None else now) >= expires:
        return None
    return customer_id


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actions.customer_token", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    minting = sub.add_parser("mint", help="print a demo token (secret from CUSTOMER_TOKEN_SECRET)")
    minting.add_argument("--customer-id", type=int, required=True)
    minting.add_argument("--ttl-minutes", type=int, default=DEFAULT_TTL_MINUTES)
    checking = sub.add_parser("verify", help="print the customer id of a token, exit 1 if invalid")
    checking.add_argument("token")
    args = parser.parse_args(argv)
    from actions.settings import get_settings

    configured = get_settings().customer_token_secret
    secret = configured.get_secret_value() if configured else ""
    if not secret:
        print(f"{SECRET_ENV} is not set", file=sys.stderr)
        return 2
    if args.command == "mint":
        print(mint(args.customer_id, int(time.time()) + args.ttl_minutes * 60, secret))
        return 0
    customer_id = verify(args.token, secret)
    if customer_id is None:
        print("invalid or expired token", file=sys.stderr)
        return 1
    print(customer_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
