"""POST /v1/posts: one post or a list of up to 1,000."""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from pydantic_core import from_json, to_json

from services.ingest.context import Context, context_of, ctx
from services.ingest.errors import field_errors, unprocessable
from services.ingest.publish import Entry
from shared import auth, metrics
from shared.labels import Labels
from shared.models import Identifier, Post, new_id, utcnow

MAX_POSTS = 1_000


class PostIn(BaseModel):
    """A post as a client sends it."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
    id: Identifier | None = None
    source: Identifier = "api"
    author: str | None = Field(default=None, max_length=200)
    url: str | None = Field(default=None, max_length=2_000)
    thread_id: str | None = Field(default=None, max_length=200)
    in_reply_to: str | None = Field(default=None, max_length=200)
    published_at: datetime | None = None
    labels: Labels = Field(default_factory=dict)

    def to_post(self, received_at: datetime) -> Post:
        # Its fields as they are (not model_dump, which was a fifth of ingest's time on a
        # batch): Post validates them again, cheaply; model_construct is slower still.
        fields = {k: v for k, v in self.__dict__.items() if v is not None}
        return Post(received_at=received_at, **fields)

    def to_entry(self, received_at: datetime) -> Entry:
        """The post as its stream entry, without building a Post: its fields are Post's, already
        validated, and readers validate the entry as a Post (a test holds the two equal)."""
        fields = {k: v for k, v in self.__dict__.items() if v is not None}
        fields["id"] = post_id = fields.get("id") or new_id()
        fields["received_at"] = received_at
        return f"{self.source}:{post_id}", post_id, to_json(fields)


class Accepted(BaseModel):
    accepted: list[str]
    duplicates: list[str]


_one = TypeAdapter(PostIn)
_many = TypeAdapter(list[PostIn])  # one call for a list: a quarter of the time of one per post


def validate_posts(body: Any) -> tuple[list[PostIn], list[dict[str, Any]]]:
    """Validate a post or a list of posts; errors carry their location (body.3.text)."""
    try:
        if isinstance(body, list):
            return _many.validate_python(body), []
        return [_one.validate_python(body)], []
    except ValidationError as e:
        return [], field_errors(e.errors(), ("body",))


def parse_posts(body: Any) -> tuple[list[Post], list[dict[str, Any]]]:
    """Validate a post or a list of posts, as Posts; errors as validate_posts."""
    valid, errors = validate_posts(body)
    now = utcnow()
    return [p.to_post(now) for p in valid], errors


async def _accept_directly(request: Request) -> Response | None:
    """POST /v1/posts in the common case — JSON posts, all valid, from a caller who may send
    them — without FastAPI's dependencies and body and response models, which were most of a
    small request's time. Anything else is None: the route as declared answers it (401, 403,
    415, 413, 422), so every refusal is the general one."""
    if not _is_json(request.headers.get("content-type")):
        return None
    c = context_of(request)
    principal = await c.authority.principal(auth.bearer_token(await auth.bearer(request)))
    if principal is None or not principal.role.allows(auth.Role.RESPONDER):
        return None
    try:
        body = from_json(await request.body())  # pydantic-core's JSON: C-fast, already here
    except ValueError:
        return None
    if not body or not isinstance(body, dict | list) or len(body) > MAX_POSTS:
        return None
    if isinstance(body, dict):
        body = [body]
    try:
        valid = _many.validate_python(body)
    except ValidationError:
        return None
    request.state.principal = principal
    now = utcnow()
    accepted, duplicates = await c.publisher.entries([p.to_entry(now) for p in valid])
    answer = to_json({"accepted": accepted, "duplicates": duplicates})
    return Response(answer, status_code=202, media_type="application/json")


class _PostsRoute(APIRoute):
    """The route as declared (its OpenAPI, its refusals), with the common case answered first."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        declared = super().get_route_handler()

        async def handler(request: Request) -> Response:
            return await _accept_directly(request) or await declared(request)

        return handler


router = APIRouter(tags=["posts"], route_class=_PostsRoute)


@router.post(
    "/v1/posts",
    status_code=202,
    response_model=Accepted,
    dependencies=[Depends(auth.responder)],
    summary="Submit one post or a list of up to 1,000",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            {"$ref": "#/components/schemas/PostIn"},
                            {"type": "array", "items": {"$ref": "#/components/schemas/PostIn"}},
                        ]
                    }
                }
            },
        }
    },
)
async def submit_posts(
    request: Request,
    body: Annotated[Any, Body(include_in_schema=False)],
    c: Context = Depends(ctx),
) -> Any:
    if not _is_json(request.headers.get("content-type")):
        metrics.posts_refused()
        return JSONResponse(status_code=415, content={"error": f"body: {SEND_JSON}"})
    posts, refusal = posts_or_refusal(body)
    if refusal is not None:
        return refusal
    accepted, duplicates = await c.publisher.posts(posts)
    return Accepted(accepted=accepted, duplicates=duplicates)


SEND_JSON = 'send JSON: {"text": "…"} (or a list of such objects), as application/json'


def _is_json(content_type: str | None) -> bool:
    # No content type at all is read as JSON (as FastAPI does); anything else must say JSON.
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def posts_or_refusal(body: Any) -> tuple[list[Post], JSONResponse | None]:
    """The posts of a request body, or the 413/422 answer it gets."""
    posts, refusal = _posts_or_refusal(body)
    if refusal is not None:
        metrics.posts_refused()
    return posts, refusal


def _posts_or_refusal(body: Any) -> tuple[list[Post], JSONResponse | None]:
    if not isinstance(body, dict | list):
        return [], unprocessable([{"loc": ["body"], "msg": SEND_JSON, "type": "json_object"}])
    if isinstance(body, list) and len(body) > MAX_POSTS:
        return [], JSONResponse(
            status_code=413,
            content={"error": f"body: {len(body)} posts; at most {MAX_POSTS} per request"},
        )
    if isinstance(body, list) and not body:
        return [], unprocessable([{"loc": ["body"], "msg": "empty list", "type": "too_short"}])
    posts, errors = parse_posts(body)
    if errors:
        return [], unprocessable(errors)
    return posts, None
