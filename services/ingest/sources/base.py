"""What every kind of polled source shares: its cursor, the pages it yields, its failures."""

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, Field

from shared.models import Post


class SourceError(Exception):
    """A poll that failed: shown in the source's status; the source backs off.

    `retry_after_s` is the server's own answer to "when may I come back" (429, 503).
    """

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Expiring(BaseModel):
    """A CAP alert published as active, and when it expires if nothing follows it."""

    post_id: str
    thread_id: str
    expires: datetime
    title: str


class Cursor(BaseModel):
    """Where the next poll of a source resumes. Kept in Redis; replaced only after a publish."""

    target: str  # what it was kept for (SourceSpec.target): another target starts afresh
    # rss
    etag: str | None = None
    last_modified: str | None = None
    seen: list[str] = Field(default_factory=list)  # item ids in the last document read
    # cap: alerts still active, to resolve when they expire without a Cancel or an Update
    expiring: list[Expiring] = Field(default_factory=list)
    # statuspage: set after the first read (which takes what was already over as history)
    primed: bool = False
    # mastodon
    since_id: str | None = None
    account_id: str | None = None


@dataclass
class Page:
    """What one request brought: new posts, and the cursor to keep once they are published."""

    posts: list[Post]
    cursor: Cursor
    not_modified: bool = False
    warnings: list[str] = field(default_factory=list)  # read, but not everything was right
