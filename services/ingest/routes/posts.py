"""POST /v1/posts: one post or a list of up to 1,000."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from services.ingest.context import Context, ctx
from services.ingest.errors import field_errors, unprocessable
from shared import auth, metrics
from shared.labels import Labels
from shared.models import Identifier, Post, utcnow

MAX_POSTS = 1_000

router = APIRouter(tags=["posts"])


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


class Accepted(BaseModel):
    accepted: list[str]
    duplicates: list[str]


_one = TypeAdapter(PostIn)


def parse_posts(body: Any) -> tuple[list[Post], list[dict[str, Any]]]:
    """Validate a post or a list of posts; errors carry their location (body.3.text)."""
    items = body if isinstance(body, list) else [body]
    posts, errors = [], []
    now = utcnow()
    for i, item in enumerate(items):
        prefix: tuple[Any, ...] = ("body", i) if isinstance(body, list) else ("body",)
        try:
            posts.append(_one.validate_python(item).to_post(now))
        except ValidationError as e:
            errors += field_errors(e.errors(), prefix)
    return posts, errors


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
