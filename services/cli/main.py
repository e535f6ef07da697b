"""The `redalert` command."""

import argparse
import os
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

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
    p.add_argument("--version", action="version", version=f"redalert {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return p


def _version() -> str:
    try:
        return package_version("redalert")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except httpx.TransportError as e:
        return fail(f"cannot reach the API at {getattr(args, 'url', '?')}: {e}")
    except BrokenPipeError:
        # The reader left (`| head -1`): stop quietly, as a Unix tool killed by SIGPIPE does.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
