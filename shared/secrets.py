"""Keeping apprise URLs' tokens and passwords out of every answer, log line and record."""

import re
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import apprise

from shared import targets

MASK = "****"

# Query parameters that carry credentials in apprise URLs (case-insensitive).
_SECRET_PARAMS = re.compile(
    r"^(token|key|apikey|api_key|secret|pass|password|pwd|auth|access_token|webhook|sig|signature"
    r"|client_secret|botkey|apptoken|usertoken)$",
    re.I,
)
# apprise's own defaults, added back by url(privacy=True): noise in a listing.
_DEFAULT_PARAMS = {"overflow", "retry", "wait", "optional", "format", "method"}


def is_valid_url(url: str) -> bool:
    targets.register()
    return apprise.Apprise.instantiate(url) is not None


@lru_cache(maxsize=4096)  # called for every delivery record: apprise's URL parsing is not free
def mask_url(url: str) -> str:
    """A URL safe to show: password, tokens, secret params and custom headers masked."""
    targets.register()
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return _mask_params(_mask_generic(url), drop_defaults=False)
    return mask_plugin(plugin)


def mask_plugin(plugin: "apprise.plugins.NotifyBase") -> str:
    """mask_url for an apprise plugin already loaded from the URL."""
    return _mask_params(plugin.url(privacy=True), drop_defaults=True)


def _mask_generic(url: str) -> str:
    # apprise could not read it: keep only scheme and host, which carry no secret.
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}/{MASK}" if parts.scheme else MASK


def _mask_params(url: str, *, drop_defaults: bool) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    params = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if drop_defaults and name in _DEFAULT_PARAMS:
            continue
        # `+Header=value` sets an HTTP header (Authorization, X-Api-Key…): apprise leaves it shown.
        if name.startswith("+") or _SECRET_PARAMS.match(name.lstrip("+-:")):
            value = MASK
        params.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(params, safe="@:/*")))


def redact(text: str, secrets: list[str]) -> str:
    """Remove known secret strings from free text (e.g. an error message quoting a URL)."""
    for s in secrets:
        if s and len(s) >= 3:
            text = text.replace(s, MASK)
    return text


def url_secrets(url: str) -> list[str]:
    """The secret parts of a URL: password, secret params, header values, path tokens."""
    parts = urlsplit(url)
    found = [parts.password or "", url]
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name.startswith("+") or _SECRET_PARAMS.match(name.lstrip("+-:")):
            found.append(value)
    # Tokens often live in the path (slack://T/B/token, gotify://host/token).
    found += [seg for seg in parts.path.split("/") if len(seg) >= 8]
    return sorted({s for s in found if s}, key=len, reverse=True)
