"""What CLI commands share: settings, logging, and an HTTP client for the API."""

import argparse
import json
import logging
import os
import sys
from typing import Any

import httpx

from shared import logscrub
from shared.settings import Settings, get_settings


def settings() -> Settings:
    return get_settings()


def setup_logging(level: str) -> None:
    logscrub.install()
    logscrub.register_settings(get_settings())
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level != "DEBUG":
        # Per-message chatter from libraries; our own loggers say what matters.
        for name in ("redalert.broker", "apprise", "uvicorn.error", "httpx"):
            logging.getLogger(name).setLevel(logging.WARNING)


def add_api_options(parser: argparse.ArgumentParser) -> None:
    default_url = os.environ.get("REDALERT_API_URL") or _default_api_url()
    parser.add_argument("--url", default=default_url, help=f"API base URL (default {default_url})")
    parser.add_argument(
        "--token",
        default=os.environ.get("REDALERT_API_TOKEN"),
        help="API token (default: $REDALERT_API_TOKEN)",
    )


def _default_api_url() -> str:
    s = get_settings()
    host = "127.0.0.1" if s.http_host in ("0.0.0.0", "::") else s.http_host
    return f"http://{host}:{s.http_port}"


def api(args: argparse.Namespace) -> httpx.Client:
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    return httpx.Client(base_url=args.url, headers=headers, timeout=10)


def fail(message: str, code: int = 1) -> int:
    print(f"redalert: {message}", file=sys.stderr)
    return code


def check(response: httpx.Response) -> Any:
    """The JSON of a 2xx answer; otherwise exit with the API's error message."""
    if response.is_success:
        return response.json() if response.content else None
    try:
        body = response.json()
        message = body.get("error") or body.get("detail") or body
    except ValueError:
        message = response.text
    raise SystemExit(
        fail(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {message}"
        )
    )


def fetch(args: argparse.Namespace, path: str, params: dict[str, Any] | None = None) -> Any:
    """GET from the API; with --json, print the answer as it is and return None."""
    with api(args) as client:
        answer = check(client.get(path, params=params))
    if getattr(args, "json", False):
        print(json.dumps(answer, indent=2))
        return None
    return answer
