"""Account administration: ``python -m handoff.admin create-supervisor --username X`` creates the first account
(``create-agent``, ``create-editor``: the other roles; editors work only in the content workbench at /workbench).

The password is read from HANDOFF_ADMIN_PASSWORD or prompted (twice, without echo); it never appears in argv.
Without a terminal to prompt on (a script, CI, a pipe) and without the variable, the command says so and exits 2.
Supervisors can also create accounts in the console (Agents panel, ``POST /api/agent/agents``).
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from redis.asyncio import Redis
from redis.exceptions import RedisError

from conversations.settings import get_settings
from handoff.agents import AccountError, AgentStore

NO_TERMINAL = ("error: no terminal to prompt for the password on. Set HANDOFF_ADMIN_PASSWORD for this command "
               "(e.g. HANDOFF_ADMIN_PASSWORD=... python -m handoff.admin ...), or run it in a terminal.")


class NoTerminal(Exception):
    """The password would have to be prompted for, but stdin is not a terminal."""


def _password() -> str:
    from_env = os.environ.get("HANDOFF_ADMIN_PASSWORD")
    if from_env:
        return from_env
    if not sys.stdin or not sys.stdin.isatty():
        raise NoTerminal
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise AccountError("passwords do not match")
    return first


async def _create(username: str, role: str, display_name: str | None, max_concurrent: int | None) -> str:
    settings = get_settings()
    redis = Redis.from_url(settings.redis_url)
    try:
        store = AgentStore(redis, settings.handoff_session_ttl_s, settings.handoff_presence_ttl_s,
                           settings.handoff_agent_max_concurrent)
        agent = await store.create(username, _password(), role, display_name, max_concurrent)
        return agent.id
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handoff.admin", description="Agent desk accounts")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("create-supervisor", "create-agent", "create-editor"):
        p = sub.add_parser(command)
        p.add_argument("--username", required=True)
        p.add_argument("--display-name")
        p.add_argument("--max-concurrent", type=int)
    args = parser.parse_args(argv)
    role = args.command.removeprefix("create-")
    try:
        agent_id = asyncio.run(_create(args.username, role, args.display_name, args.max_concurrent))
    except NoTerminal:
        print(NO_TERMINAL, file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt):
        print("\nerror: cancelled, no account created", file=sys.stderr)
        return 1
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (RedisError, OSError) as exc:
        print(f"error: cannot reach Redis ({exc}); is the stack running and REDIS_URL right?", file=sys.stderr)
        return 1
    print(f"created {role} {args.username} (id {agent_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
