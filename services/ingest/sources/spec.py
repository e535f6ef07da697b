"""What a source is, as the API, the CLI and the sources file declare it.

One flat model for every kind, so a validation error names the field (`url`, `hashtag`,
`secret`) rather than a branch of a union; each kind's own rules are field validators.
"""

import json
import re
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from services.ingest.sources.jsonmap import JsonMapping
from shared.models import Identifier, utcnow
from shared.secrets import MASK
from shared.yamlfile import ConfigError, load_file

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
_HASHTAG = re.compile(r"^\w{1,100}$")
_ACCOUNT = re.compile(r"^[\w.\-]{1,100}(@[\w.\-:]{1,200})?$")
_LIST_ID = re.compile(r"^[\w\-]{1,100}$")


class SourceKind(StrEnum):
    RSS = "rss"  # RSS 0.9x/1.0/2.0 and Atom, polled
    MASTODON = "mastodon"  # any Mastodon-API server, polled
    WEBHOOK = "webhook"  # pushed to redalert, signed
    STATUSPAGE = "statuspage"  # an Atlassian Statuspage's incidents.json, polled
    CAP = "cap"  # OASIS CAP 1.2 alerts: one message or an Atom feed of them, polled
    JSON = "json"  # any JSON pushed to redalert, signed, read through `mapping`


POLLED = frozenset({SourceKind.RSS, SourceKind.MASTODON, SourceKind.STATUSPAGE, SourceKind.CAP})
PUSHED = frozenset({SourceKind.WEBHOOK, SourceKind.JSON})
MASTODON_TARGETS = ("account", "hashtag", "list")


def _kind(info: ValidationInfo) -> SourceKind | None:
    return info.data.get("kind")  # absent when `kind` itself was invalid


class SourceSpec(BaseModel):
    """A source as declared. Field order matters: `kind` is validated before what depends on it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Unique; letters, digits, `_ . -`.")
    kind: SourceKind
    url: str | None = Field(
        default=None,
        max_length=2_000,
        validate_default=True,
        description="rss: the feed; mastodon: the server (https://mastodon.social); statuspage: "
        "the page (https://www.githubstatus.com) or its incidents.json; cap: a CAP message or an "
        "Atom feed of them.",
    )
    interval_s: float = Field(
        default=60.0, gt=0, le=7 * 86_400, description="Seconds between polls."
    )
    post_source: Identifier | None = Field(
        default=None,
        description="The `source` its posts carry. Default: the name (rss, webhook) or the "
        "server's host (mastodon), so sources on one server share threads and de-duplication.",
    )
    account: str | None = Field(default=None, validate_default=True)
    hashtag: str | None = Field(default=None, validate_default=True)
    list: str | None = Field(default=None, validate_default=True)  # the API's word
    token: SecretStr | None = Field(
        default=None, validate_default=True, description="mastodon: optional access token."
    )
    secret: SecretStr | None = Field(
        default=None, validate_default=True, description="webhook, json: the HMAC-SHA256 key."
    )
    language: str | None = Field(
        default=None,
        validate_default=True,
        pattern=r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$",
        description="cap: which language's info block to read (en-US, fr…); default English, "
        "else the first.",
    )
    mapping: JsonMapping | None = Field(
        default=None, validate_default=True, description="json: where each field of a post is."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None, info: ValidationInfo) -> str | None:
        kind = _kind(info)
        if kind in PUSHED:
            if url is not None:
                raise ValueError(f"{kind} sources are pushed to; they have no url")
            return None
        if kind is None:
            return url
        if url is None:
            raise ValueError(f"required for {kind} sources")
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        try:
            parts.port  # noqa: B018 (raises on a port that is not a number)
        except ValueError:
            raise ValueError("has an invalid port") from None
        return urlunsplit(parts)

    @field_validator("account", "hashtag", "list")
    @classmethod
    def _mastodon_target(cls, value: str | None, info: ValidationInfo) -> str | None:
        field = info.field_name
        kind = _kind(info)
        if value is not None and kind is not None and kind is not SourceKind.MASTODON:
            raise ValueError("only for mastodon sources")
        if value is not None:
            value = value.strip().lstrip("@#" if field != "list" else "")
            pattern = {"account": _ACCOUNT, "hashtag": _HASHTAG, "list": _LIST_ID}[field]
            if not pattern.match(value):
                what = {"account": "user or user@domain", "hashtag": "a tag", "list": "a list id"}
                raise ValueError(f"must be {what[field]}")
        if field == "list" and kind is SourceKind.MASTODON:
            given = [value, info.data.get("account"), info.data.get("hashtag")]
            count = sum(v is not None for v in given)
            if count != 1:
                raise ValueError("a mastodon source reads exactly one of account, hashtag, list")
        return value

    @field_validator("token")
    @classmethod
    def _token(cls, token: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        kind = _kind(info)
        if token is not None and kind is not None and kind is not SourceKind.MASTODON:
            raise ValueError("only for mastodon sources")
        return token

    @field_validator("secret")
    @classmethod
    def _secret(cls, secret: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        kind = _kind(info)
        if kind in PUSHED:
            if secret is None:
                raise ValueError(f"required for {kind} sources (the HMAC key senders sign with)")
            if len(secret.get_secret_value()) < 16:
                raise ValueError("must be at least 16 characters")
        elif secret is not None and kind is not None:
            raise ValueError("only for webhook and json sources")
        return secret

    @field_validator("language")
    @classmethod
    def _language(cls, language: str | None, info: ValidationInfo) -> str | None:
        kind = _kind(info)
        if language is not None and kind is not None and kind is not SourceKind.CAP:
            raise ValueError("only for cap sources")
        return language

    @field_validator("mapping")
    @classmethod
    def _mapping(cls, mapping: JsonMapping | None, info: ValidationInfo) -> JsonMapping | None:
        kind = _kind(info)
        if kind is SourceKind.JSON and mapping is None:
            raise ValueError("required for json sources (at least `text`: where the text is)")
        if mapping is not None and kind is not None and kind is not SourceKind.JSON:
            raise ValueError("only for json sources")
        return mapping

    # --- what follows from the declaration ---------------------------------------------------

    @property
    def polled(self) -> bool:
        return self.kind in POLLED

    @property
    def label(self) -> str:
        """The `source` of its posts: ids are unique within it, threads live within it."""
        if self.post_source:
            return self.post_source
        if self.kind is SourceKind.MASTODON and self.url:
            return urlsplit(self.url).netloc.rpartition("@")[2].lower()
        return self.name

    @property
    def target(self) -> str:
        """What is read. A cursor kept for another target (the URL changed) is not reused."""
        what = self.account or self.hashtag or self.list or ""
        return f"{self.kind} {self.url or ''} {what}".strip()

    @property
    def mastodon_target(self) -> tuple[str, str]:
        for field, value in zip(
            MASTODON_TARGETS, (self.account, self.hashtag, self.list), strict=True
        ):
            if value is not None:
                return field, value
        raise ValueError(f"source {self.name} has no mastodon target")


class Source(SourceSpec):
    """A source as stored: its declaration, where it was declared, and when."""

    origin: Literal["api", "file"] = "api"
    created_at: datetime = Field(default_factory=utcnow)

    def stored(self) -> str:
        """JSON for Redis only: the secrets are in it."""
        data = self.model_dump(mode="json")
        for field in ("token", "secret"):
            value: SecretStr | None = getattr(self, field)
            data[field] = value.get_secret_value() if value is not None else None
        return json.dumps(data)

    def secrets(self) -> list[str]:
        """Strings never to show (in an error message quoting a request, say)."""
        found = [s.get_secret_value() for s in (self.token, self.secret) if s is not None]
        if self.url and (password := urlsplit(self.url).password):
            found.append(password)
        return found


def public(source: Source) -> dict[str, Any]:
    """A source as every answer shows it: secrets masked, empty fields left out."""
    data = source.model_dump(mode="json", exclude_none=True)
    for field in ("token", "secret"):
        if field in data:
            data[field] = MASK
    if source.url:
        data["url"] = mask_url_password(source.url)
    data["source"] = source.label
    return data


def mask_url_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[SourceSpec] = Field(default_factory=list)

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[SourceSpec]) -> list[SourceSpec]:
        seen: set[str] = set()
        for s in sources:
            if s.name in seen:
                raise ValueError(f"two sources are named {s.name!r}")
            seen.add(s.name)
        return sources


def load_sources_file(path: Path) -> list[Source]:
    """Sources declared in YAML; errors say `FILE:LINE: reason`."""
    specs = load_file(SourcesFile, path).sources
    return [Source(**s.model_dump(), origin="file") for s in specs]


__all__ = ["ConfigError", "Source", "SourceKind", "SourceSpec", "load_sources_file", "public"]
