"""Where redalert may connect: the target policy, checked on the resolved address.

Sources (feeds, Mastodon), outbound webhooks and apprise targets are URLs an operator typed, or
an attacker with a token did: without a policy, `http://169.254.169.254/…` reads a cloud
machine's credentials, and a feed's redirect can lead anywhere. So every target's host is
resolved and each of its addresses checked before connecting, and again after each redirect:

- refused if it is in `REDALERT_TARGET_DENY` (CIDRs; default: link-local and the cloud metadata
  addresses), or if `REDALERT_TARGET_ALLOW` is set and it is in none of those;
- loopback and private ranges are allowed by default (self-hosted chat lives there) and can be
  denied.

`refusal(address)` is pure; `check_host` and `check_url` resolve first. A name that does not
resolve is not refused here: the connection fails on its own, with its own error. (The address
checked is the one resolved just before connecting; a DNS answer that changes in between — DNS
rebinding — is not caught.)
"""

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

# Link-local (where every cloud's metadata service answers: 169.254.169.254, ECS 169.254.170.2),
# Alibaba's metadata address, AWS's IPv6 one, and IPv6 link-local.
DEFAULT_DENY = ("169.254.0.0/16", "100.100.100.200/32", "fd00:ec2::254/128", "fe80::/10")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetRefused(Exception):
    """Raised (e.g. in an httpx request hook) when a target's address is refused."""


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


@dataclass(frozen=True)
class TargetPolicy:
    deny: tuple[Network, ...] = networks(DEFAULT_DENY)
    allow: tuple[Network, ...] = ()

    @classmethod
    def of(cls, settings: object) -> "TargetPolicy":
        """From settings with `target_deny` and `target_allow` (lists of CIDRs)."""
        return cls(
            networks(getattr(settings, "target_deny", DEFAULT_DENY)),
            networks(getattr(settings, "target_allow", ())),
        )

    def refusal(self, address: str) -> str | None:
        """Why connecting to this IP address is refused; None when it is allowed."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        for net in self.deny:
            if ip.version == net.version and ip in net:
                return f"{ip} is in {net} (REDALERT_TARGET_DENY)"
        if self.allow and not any(ip.version == n.version and ip in n for n in self.allow):
            return f"{ip} is in none of REDALERT_TARGET_ALLOW"
        return None

    async def check_host(self, host: str, port: int | None = None) -> str | None:
        """Why connecting to `host` is refused (any of its addresses), or None."""
        host = host.strip("[]")
        if not host:
            return None
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
            addresses = [host]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port or 0, type=socket.SOCK_STREAM
                )
            except (OSError, UnicodeError):
                return None  # does not resolve: the connection will fail on its own
            addresses = sorted({str(info[4][0]) for info in infos})
        for address in addresses:
            if problem := self.refusal(address):
                return f"target {host}: {problem}"
        return None

    async def check_url(self, url: str) -> str | None:
        """`check_host` for a URL's host (http(s), or an apprise URL whose host is a name or an
        address). Hosts that are not names — apprise's tokens (`slack://T0/B0/xyz`) — are not
        looked up: resolving them would send a secret to DNS."""
        try:
            parts = urlsplit(url)
            host, port = parts.hostname or "", parts.port
        except ValueError:
            return None
        if not _looks_like_a_host(host):
            return None
        return await self.check_host(host, port)

    def request_hook(self) -> "object":
        """An httpx `request` event hook: each request, redirects included, is checked."""

        async def hook(request: httpx.Request) -> None:
            problem = await self.check_host(request.url.host, request.url.port)
            if problem is not None:
                raise TargetRefused(problem)

        return hook


def _looks_like_a_host(host: str) -> bool:
    if host == "localhost" or ":" in host:
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return "." in host
