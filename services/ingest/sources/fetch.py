"""One HTTP request to a source, with its limits; every way it can fail is a `SourceError`."""

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from services.ingest.sources.base import SourceError
from services.ingest.sources.schedule import parse_retry_after
from shared.netpolicy import TargetPolicy, TargetRefused

MAX_BODY_BYTES = 10_000_000
USER_AGENT = "redalert/0.1 (+https://github.com/redalert)"


@dataclass
class Response:
    status: int
    headers: httpx.Headers
    body: bytes
    url: str

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class Http:
    """The client sources share in one process, and the limits of each request."""

    def __init__(
        self,
        timeout_s: float,
        client: httpx.AsyncClient | None = None,
        policy: TargetPolicy | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        # Every request, each redirect too, goes only where the target policy allows.
        hooks = {"request": [(policy or TargetPolicy()).request_hook()]}
        self.client = client or httpx.AsyncClient(
            follow_redirects=True,
            timeout=httpx.Timeout(timeout_s),
            headers={"User-Agent": USER_AGENT},
            event_hooks=hooks,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int = MAX_BODY_BYTES,
    ) -> Response:
        """A 2xx or 304 answer; anything else raises `SourceError`. A body longer than
        `max_bytes` is refused as it streams in, before anyone parses it."""
        try:
            # httpx's timeout is per read; this one bounds the whole answer (a slow drip too).
            async with asyncio.timeout(self.timeout_s):
                response = await self._get(url, params, headers, max_bytes)
        except TimeoutError:
            raise SourceError(f"timed out after {self.timeout_s:g}s") from None
        except httpx.TimeoutException:
            raise SourceError(f"timed out after {self.timeout_s:g}s") from None
        except httpx.HTTPError as e:
            raise SourceError(f"request failed: {type(e).__name__}: {e}") from None
        except TargetRefused as e:
            raise SourceError(f"refused: {e}") from None
        if response.status == 304 or 200 <= response.status < 300:
            return response
        raise SourceError(
            _describe_failure(response),
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
        )

    async def _get(
        self,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        max_bytes: int,
    ) -> Response:
        async with self.client.stream("GET", url, params=params, headers=headers) as r:
            length = r.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:  # said up front: not even read
                raise SourceError(f"answer larger than {max_bytes} bytes ({length} announced)")
            body = bytearray()
            async for chunk in r.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise SourceError(f"answer larger than {max_bytes} bytes")
            return Response(r.status_code, r.headers, bytes(body), str(r.url))


def _describe_failure(r: Response) -> str:
    text = f"HTTP {r.status} {httpx.codes.get_reason_phrase(r.status)}".rstrip()
    # Mastodon says why in {"error": "..."}.
    try:
        error = json.loads(r.body[:10_000]).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, str) and error:
        text += f": {error[:200]}"
    return text
