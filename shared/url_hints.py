"""What to say when a subscription URL is not one apprise can send to: the nearest scheme."""

import difflib
from functools import lru_cache
from urllib.parse import urlsplit

from apprise.manager_plugins import NotificationManager

from shared import targets


@lru_cache(maxsize=1)
def schemes() -> frozenset[str]:
    targets.register()
    return frozenset(s.lower() for s in NotificationManager().schemas())


def hint(url: str) -> str:
    """A short suggestion, or "" when there is nothing useful to say. Never quotes the URL."""
    try:
        return _hint(url)
    except Exception:  # a hint must never turn a 422 into a 500
        return "see apprise's list of services for the URL to use"


def _hint(url: str) -> str:
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("http", "https"):
        secure = "s" if scheme == "https" else ""
        return (
            f"for a plain HTTP endpoint use json{secure}:// (a JSON POST) or form{secure}:// "
            "with the same host and path, or a `webhook` for signed JSON"
        )
    if not scheme:
        return "an apprise URL starts with its service's scheme, e.g. json://host/path"
    if scheme in schemes():
        return f"{scheme}:// is known but this URL is incomplete: see apprise's page for it"
    near = difflib.get_close_matches(scheme, sorted(schemes()), n=1, cutoff=0.6)
    if near:
        return f"unknown scheme {scheme}://; did you mean {near[0]}://?"
    return f"unknown scheme {scheme}://"
