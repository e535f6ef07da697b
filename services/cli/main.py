"""The `redalert` command."""

import argparse
import sys

import httpx

from services.cli import (
    audit,
    corrections,
    deadletter,
    incidents,
    model,
    oncall,
    replay,
    routes,
    rules,
    serve,
    silences,
    sources,
    status,
    subscriptions,
    tokens,
)
from services.cli.common import fail

COMMANDS = [
    serve,
    replay,
    status,
    incidents,
    subscriptions,
    silences,
    deadletter,
    sources,
    rules,
    oncall,
    routes,
    corrections,
    tokens,
    audit,
    model,
]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="redalert",
        description="Event-driven alerting: posts in; severities, incidents, notifications out.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except httpx.TransportError as e:
        return fail(f"cannot reach the API at {getattr(args, 'url', '?')}: {e}")


if __name__ == "__main__":
    sys.exit(main())
