"""Logs that never leak: every log record, of every logger and level, is scrubbed as it is made.

Third-party libraries log what they send: httpx a source URL with its password or a webhook's
`?token=`, apprise the headers of a request (`X-Api-Key`). Filters on handlers or loggers miss
records of loggers that do not propagate, so the scrubbing is done where every record is born:
the log record factory. A record's message is scrubbed when it is first read (`getMessage`, as
every handler and formatter reads it); an exception's text is scrubbed as the record is made.

Masked: URLs' passwords, the values of secret-looking query parameters and headers
(`token=`, `key=`, `sig=`, `Authorization: Bearer …`, `'X-Api-Key': '…'`), and every secret
registered with `register` (the settings' tokens and secrets; subscriptions' and sources'
secrets as they are loaded).
"""

import logging
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

MASK = "****"

_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^\s:/@'\"]*:)[^\s@/'\"]+(?=@)", re.I)
_SECRET_NAMES = (
    r"token|access_token|api[_-]?key|apikey|key|secret|client_secret|password|pass|pwd|sig|"
    r"signature|auth|authorization|x-api-key|x-auth-token|botkey|apptoken|usertoken|webhook"
)
# name=value in queries and forms; "name": "value" / 'name': 'value' in dumped dicts and JSON;
# Name: value in headers. The value ends at a quote, a space, & or ; or ,.
_NAMED = re.compile(
    rf"(?P<head>(?<![\w-])(?:\+|-|:)?(?:{_SECRET_NAMES})(?P<q>['\"]?)\s*(?:=|:)\s*['\"]?"
    r"(?:(?:bearer|basic|token)\s+)?)(?P<value>[^\s'\",&;)}\]]{3,})",
    re.I,
)
# apprise's `+Header=value` query parameters (also URL-encoded, `%2BHeader=`): any header.
_HEADER_PARAM = re.compile(r"(?P<head>[?&](?:\+|%2B)[^=&\s]+=)(?P<value>[^&\s'\"]+)", re.I)
_BEARER = re.compile(r"(?P<head>\b(?:bearer|basic)\s+)(?P<value>[A-Za-z0-9._~+/=\-]{8,})", re.I)

_known: set[str] = set()
_lock = threading.Lock()
_pattern: re.Pattern[str] | None = None
_compiled_for = 0  # how many known secrets `_pattern` covers


def register(*secrets: str | None) -> None:
    """Secrets to mask wherever they appear (3 characters at least; shorter ones mean nothing).

    Cheap: called on every send. The pattern is rebuilt when a record is next scrubbed, not
    here — rebuilding it per new secret cost a thousand-subscription fan-out over a third of
    its time (one compile per subscription, each over all secrets known so far).
    """
    added = {s for s in secrets if s and len(s) >= 3}
    if added <= _known:
        return
    with _lock:
        _known.update(added)


def _secrets_pattern() -> re.Pattern[str] | None:
    global _pattern, _compiled_for
    if _compiled_for != len(_known):
        with _lock:
            ordered = sorted(_known, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None
            _compiled_for = len(ordered)
    return _pattern


def register_settings(settings: Any) -> None:
    """Every secret the settings hold."""
    for name in ("api_token", "metrics_token", "link_secret", "pagerduty_secret"):
        value = getattr(settings, name, None)
        if value is not None:
            register(value.get_secret_value())
    value = getattr(settings, "alertmanager_secret", None)
    if value is not None:
        register(value.get_secret_value())
    url = getattr(settings, "redis_url", None)
    if url and (m := _URL_PASSWORD.search(url)):
        register(url[m.end("head") : m.end()])


def scrub(text: str) -> str:
    if (pattern := _secrets_pattern()) is not None:
        text = pattern.sub(MASK, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
        text = _HEADER_PARAM.sub(lambda m: m["head"] + MASK, text)
    text = _NAMED.sub(lambda m: m["head"] + MASK, text)
    return _BEARER.sub(lambda m: m["head"] + MASK, text)


def scrub_all(texts: Iterable[str]) -> list[str]:
    return [scrub(t) for t in texts]


_formatter = logging.Formatter()


class _ScrubbedRecord(logging.LogRecord):
    """A record whose message is scrubbed once, when it is first read."""

    def getMessage(self) -> str:
        scrubbed = self.__dict__.get("_scrubbed")
        if scrubbed is None:
            scrubbed = self._scrubbed = scrub(super().getMessage())
        return scrubbed


_installed: Callable[..., logging.LogRecord] | None = None


def install() -> None:
    """Scrub every log record from now on (idempotent)."""
    global _installed
    if _installed is not None:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if type(record) is logging.LogRecord:
            # The message is scrubbed when a handler first asks for it: most records made
            # (apprise's DEBUG lines, several per send) are dropped unread, and scrubbing each
            # as it was made cost fan-out nine tenths of its rate.
            record.__class__ = _ScrubbedRecord
        else:
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: logging reports it; keep what it has
                return record
            record.msg, record.args = scrub(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = scrub(_formatter.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return record

    logging.setLogRecordFactory(factory)
    _installed = factory
