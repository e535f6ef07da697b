"""The `redalert` command."""

import argparse
import sys

from services.cli import deadletter, replay, serve, silences, subscriptions

COMMANDS = [serve, replay, subscriptions, silences, deadletter]


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
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
