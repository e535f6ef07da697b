"""What the console tests share: a client that signs in and reads a page's CSRF token."""

import re

import httpx

from shared.settings import Settings

CSRF = re.compile(r'name="csrf" (?:value|content)="([^"]+)"')


def browser(settings: Settings) -> httpx.AsyncClient:
    """A client that asks for pages as a browser does (and keeps cookies, as a browser does)."""
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{settings.http_port}",
        headers={"accept": "text/html"},
        timeout=10,
    )


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, "no CSRF token on the page"
    return m.group(1)


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    form = (await client.get("/signin")).text
    return await client.post("/signin", data={"token": token, "csrf": csrf_of(form), "next": "/"})
