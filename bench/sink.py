"""The benches' delivery target: a local HTTP server, in its own process, that answers 200 to
every POST and notes when it arrived and which delivery it was (`X-Redalert-Delivery`).

    python bench/sink.py [--latency-ms MS]   # prints its port, then serves until killed

`GET /` returns the notes (`[[unix time, delivery id], …]`) and forgets them. aiohttp's server
parses HTTP in C and keeps connections alive, as a real service does: the sink's own cost stays
small beside what is measured (a thread per connection, as http.server does, cost as much CPU as
the sender it measured). `--latency-ms` answers that much later, like a remote service.
"""

import argparse
import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from aiohttp import web

DELIVERY = "X-Redalert-Delivery"  # <event id>/<subscription id> (services/notify/send.py)


def app(latency_s: float) -> web.Application:
    notes: list[tuple[float, str]] = []

    async def post(request: web.Request) -> web.Response:
        await request.read()
        notes.append((time.time(), request.headers.get(DELIVERY, "")))
        if latency_s:
            await asyncio.sleep(latency_s)
        return web.Response(body=b"{}", content_type="application/json")

    async def get(_: web.Request) -> web.Response:
        taken = list(notes)
        notes.clear()
        return web.Response(body=json.dumps(taken).encode(), content_type="application/json")

    application = web.Application()
    application.router.add_post("/{tail:.*}", post)
    application.router.add_get("/{tail:.*}", get)
    return application


def serve(latency_ms: float) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    web.run_app(app(latency_ms / 1000), sock=listener, print=None, access_log=None, backlog=4096)


@contextlib.contextmanager
def sink_process(latency_ms: float = 0.0) -> Iterator[int]:
    """Start the sink in its own process (it does not compete with the sender for the GIL);
    yields its port."""
    command = [sys.executable, __file__, "--latency-ms", str(latency_ms)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=0.0)
    serve(parser.parse_args().latency_ms)
