"""Recording every change made through the API in the audit trail, in one place.

A middleware sees every request: after a write to `/v1/…` that succeeded, it records who (the
principal `require` left on the request), when, which route and object, from which address, and
what changed — a route says what changed with `note(request, ...)`; without it, the entry still
names the route and its object. Posts and inbound webhooks are data, not changes: not recorded
(they have their own trail: the streams and the incidents' timelines). A route outside `/v1/`
that changes something (the console's forms) says so with `audited(request)`.
"""

import logging
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.audit import AuditEntry, AuditTrail
from shared.auth import Principal

log = logging.getLogger("redalert.audit")

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
# Route paths (as declared) that carry data or only try something: nothing changes.
NOT_CHANGES = {
    "/v1/posts",
    "/v1/sources/{name}/posts",
    "/v1/webhooks/pagerduty",
    "/v1/webhooks/alertmanager",
    "/v1/rules/test",
    "/v1/routes/test",
}


def note(
    request: Request,
    *,
    changes: dict[str, Any] | None = None,
    target: str | None = None,
    action: str | None = None,
    claimed: str | None = None,
    actor: str | None = None,
) -> None:
    """What a route changed, for the audit entry of this request (secrets are masked)."""
    found = getattr(request.state, "audit", None) or {}
    found.update(
        {
            k: v
            for k, v in {
                "changes": changes,
                "target": target,
                "action": action,
                "claimed": claimed,
                "actor": actor,
            }.items()
            if v is not None
        }
    )
    request.state.audit = found


def audited(request: Request) -> None:
    """This request (outside /v1/) changes something: record it as the API's changes are."""
    request.state.audited = True


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITES:
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_and_see)
        route = getattr(scope.get("route"), "path", None)
        marked = (scope.get("state") or {}).get("audited", False)
        if status >= 400 or route is None or route in NOT_CHANGES:
            return
        if not (route.startswith("/v1/") or marked):
            return
        try:
            trail: AuditTrail = scope["app"].state.ctx.audit
            await trail.record(_entry(scope, route, status))
        except Exception:  # the change is made; a lost audit line must not turn it into an error
            log.exception("could not record an audit entry for %s %s", scope["method"], route)


def _entry(scope: Scope, route: str, status: int) -> AuditEntry:
    state = scope.get("state") or {}
    principal: Principal | None = state.get("principal")
    extra: dict[str, Any] = state.get("audit") or {}
    params = scope.get("path_params") or {}
    target = extra.get("target") or next(iter(params.values()), None)
    client = scope.get("client")
    return AuditEntry(
        actor=extra.get("actor") or (principal.actor(extra.get("claimed")) if principal else "?"),
        role=principal.role.value if principal else None,
        authenticated=principal.authenticated if principal else False,
        claimed=extra.get("claimed"),
        action=extra.get("action") or f"{scope['method']} {route}",
        target=str(target) if target is not None else None,
        changes=extra.get("changes"),
        status=status,
        source_ip=client[0] if client else None,
    )
