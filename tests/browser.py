"""A real headless Chromium (Debian's chromium + chromium-driver, through Selenium) and a
redalert served from its own thread, so the browser's blocking calls never stall the server.

Nothing is downloaded: the browser and driver are the system's (`.ci/run` installs them), and
Chromium starts with every background fetch off and a fresh profile.
"""

import asyncio
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis as sync_redis

from services.runtime import Runtime
from shared.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
)


def need_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing and os.environ.get("CI"):
        pytest.fail(f"{', '.join(missing)} missing: .ci/run installs chromium and chromium-driver")
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: apt-get install chromium chromium-driver")


@contextmanager
def chromium() -> Iterator["object"]:
    need_browser()
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager never fetches a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="redalert-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # The browser's network log: tests check that no request left the machine.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def requested(driver: "object") -> list[str]:
    """Every URL the browser asked for since the last call (from Chrome's network log)."""
    urls = []
    for entry in driver.get_log("performance"):  # type: ignore[attr-defined]
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


@contextmanager
def served(settings: Settings) -> Iterator[Runtime]:
    """ingest, classify and notify on their own event loop in a thread; the namespace is
    deleted afterwards."""
    loop = asyncio.new_event_loop()
    runtime = Runtime(settings, ("ingest", "classify", "notify"))
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runtime.start())
        except BaseException as e:
            failure.append(e)
            ready.set()
            return
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(60)
    if failure:
        raise failure[0]
    try:
        yield runtime
    finally:
        asyncio.run_coroutine_threadsafe(runtime.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        client = sync_redis.Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0")
        found = list(client.scan_iter(match=f"{settings.namespace}:*", count=1000))
        for i in range(0, len(found), 500):
            client.unlink(*found[i : i + 500])
        client.close()
