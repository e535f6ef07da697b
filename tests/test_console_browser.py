"""The console in a real headless Chromium: what a person does, asserted on what the page shows.

Few tests, each a whole flow; every wait is for content to appear on the page. The incident page
and the rules workbench are saved as screenshots under docs/ (shown in the README).
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr

from tests.browser import chromium, requested, served
from tests.rules_helpers import KETTLE

TOKEN = "browser-test-token-0123456789"
RED = "Fire at the chemical plant on Route 9, evacuate the area now"
WAIT_S = 20


@pytest.fixture
def browser() -> Iterator[object]:
    """A headless Chromium; after the test, no request it made may have left the machine."""
    with chromium() as driver:
        yield driver
        urls = requested(driver)
        assert urls, "the network log is empty"
        # chrome://, data: and the like never touch the network; anything else must be local.
        away = [
            u
            for u in urls
            if urlsplit(u).scheme in ("http", "https", "ws", "wss", "ftp")
            and urlsplit(u).hostname != "127.0.0.1"
        ]
        assert away == [], f"requests that left the machine: {away}"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/ (the README's) with REDALERT_SCREENSHOTS=1, else a tmp dir."""
    if os.environ.get("REDALERT_SCREENSHOTS"):
        return Path(__file__).resolve().parent.parent / "docs"
    return tmp_path


def _wait_text(driver, css: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT_S).until(
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text)
    )


def _find(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def _fits(driver, width: int = 375) -> bool:
    """Readable on a phone: nothing makes the page scroll sideways at this width."""
    driver.set_window_size(width, 900)
    try:
        return driver.execute_script("return document.documentElement.scrollWidth") <= width
    finally:
        driver.set_window_size(1280, 1000)


def _api(settings) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{settings.http_port}",
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )


def test_sign_in_watch_an_incident_arrive_acknowledge_and_correct_it(browser, make_settings, shots):
    settings = make_settings(api_token=SecretStr(TOKEN))
    base = f"http://127.0.0.1:{settings.http_port}"
    with served(settings), _api(settings) as api:
        browser.get(base + "/")
        _wait_text(browser, "h1", "Sign in")
        _find(browser, "#token").send_keys(TOKEN)
        _find(browser, "button[type=submit]").click()
        _wait_text(browser, "#incident-rows", "No incidents here")
        _wait_text(browser, "#live-state", "Updates live")
        assert _fits(browser)

        # A red alert arrives: the list shows it without a reload.
        browser.execute_script("window.notReloaded = true")
        assert api.post("/v1/posts", json={"text": RED}).status_code == 202
        _wait_text(browser, "#incident-rows", RED)
        assert browser.execute_script("return window.notReloaded") is True
        assert "red alert" in _find(browser, "#incident-rows .sev").text  # words, not colour only

        _find(browser, "#incident-rows a").click()
        _wait_text(browser, "#timeline", "opened")
        _find(browser, "#note").send_keys("crew on the way")
        _find(browser, "button[formaction$='/ack']").click()
        _wait_text(browser, "#timeline", "crew on the way")
        _wait_text(browser, "#incident-status", "acknowledged")
        assert "by api-token via console" in _find(browser, "#timeline").text
        assert _fits(browser)
        assert browser.save_screenshot(str(shots / "console-incident.png"))

        # A correction: this was a drill. `rules eval --feedback` counts it.
        from selenium.webdriver.support.ui import Select

        Select(_find(browser, ".label-form select")).select_by_value("no_danger")
        _find(browser, ".label-form input[name=why]").send_keys("announced drill")
        _find(browser, ".label-form button").click()
        _wait_text(browser, ".post .correction", "Corrected to")
        assert "announced drill" in _find(browser, ".post .correction").text
        env = {
            **os.environ,
            "REDALERT_REDIS_URL": settings.redis_url or "",
            "REDALERT_NAMESPACE": settings.namespace,
        }
        out = subprocess.run(
            [sys.executable, "-m", "services.cli", "rules", "eval", "--feedback"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
    assert "operators' corrections: 1 posts, 0 agree with the rules" in out


def test_create_and_expire_a_silence(browser, make_settings):
    settings = make_settings()
    base = f"http://127.0.0.1:{settings.http_port}"
    with served(settings):
        browser.get(base + "/silences")
        _wait_text(browser, "#silence-list", "No silences")
        # Keyboard first: the first Tab reaches "Skip to content", the next the navigation.
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        ActionChains(browser).send_keys(Keys.TAB).perform()
        assert browser.switch_to.active_element.text == "Skip to content"
        ActionChains(browser).send_keys(Keys.TAB).perform()
        assert browser.switch_to.active_element.get_attribute("class") == "brand"
        _find(browser, "#s-topic").send_keys("chemical")
        _find(browser, "#s-duration").clear()
        _find(browser, "#s-duration").send_keys("90m")
        _find(browser, "#s-comment").send_keys("plant maintenance")
        _find(browser, "button[name=preview]").click()
        _wait_text(browser, "#silence-preview", "It would hold back 0 notification pairs")
        _find(browser, "#silence-form button.primary").click()
        _wait_text(browser, "#silence-list", "🔇 active")
        assert "topic = chemical" in _find(browser, "#silence-list").text
        _find(browser, "#silence-list button.danger").click()
        _wait_text(browser, "#silence-list", "ended early by anonymous")
        assert "🔇 active" not in _find(browser, "#silence-list").text

        # The API page renders from redalert's own files (Swagger UI, no CDN).
        browser.get(base + "/docs")
        _wait_text(browser, ".swagger-ui .info .title", "redalert")


def test_rules_workbench_error_at_its_line_fix_backtest_save(browser, make_settings, shots):
    settings = make_settings()
    base = f"http://127.0.0.1:{settings.http_port}"
    with served(settings), _api(settings) as api:
        api.post("/v1/posts", json=[{"text": "The kettle is whistling"}, {"text": RED}])
        browser.get(base + "/rules")
        _wait_text(browser, "#check-state", "Checked as you type")
        editor = _find(browser, "#rules-text")
        # The draft: the one-cue kettle rules with a typo on line 4.
        set_text = (
            "arguments[0].value = arguments[1];"
            "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));"
        )
        browser.execute_script(set_text, editor, KETTLE.replace("weight: 2", "weight: two"))
        _wait_text(browser, "#problem-list", "line 4")
        assert _find(browser, "#gutter .bad").text == "4"
        browser.execute_script(set_text, editor, KETTLE)
        _wait_text(browser, "#check-state", "Valid: version")

        _find(browser, "#try-text").send_keys("The kettle!")
        _wait_text(browser, "#try-result", "red alert")
        _find(browser, "#btn-backtest").click()
        _wait_text(browser, "#backtest-result", "would change severity")
        assert "of the last" in _find(browser, "#backtest-result").text
        read = int(editor.get_attribute("data-revision"))  # the file's, published by classify
        _find(browser, "#btn-save").click()
        _wait_text(browser, "#save-state", f"Saved as revision {read + 1}")
        assert browser.save_screenshot(str(shots / "console-rules.png"))
        in_use = api.get("/v1/rules").json()
    assert (in_use["revision"], in_use["yaml"]) == (read + 1, KETTLE)
