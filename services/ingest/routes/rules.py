"""/v1/rules: read, change and try the severity rules; classify replicas pick changes up live."""

from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.classify.rules import ConfigError, Engine, compile_rules, read_rules_file
from services.classify.rules.explain import explain
from services.classify.rules.live import file_source
from services.classify.rules.store import RevisionConflict, RulesDoc, RulesStore
from services.ingest.audit import note
from services.ingest.context import Context, ctx
from services.ingest.contracts import view_of
from shared import auth
from shared.auth import Principal, Role
from shared.models import Classification, Post, SourceHint

router = APIRouter(tags=["rules"])

BODY = "body"  # the name problems are reported under: "body:12: reason"

RulesRevision = view_of(
    RulesDoc, "RulesRevision", "A revision of the rules, without its YAML.", without=("yaml",)
)
RulesChange = view_of(
    RulesDoc,
    "RulesChange",
    "The revision a PUT left the rules at; `changed` is false when they said the same already.",
    without=("yaml",),
    changed=bool,
)
RulesVerdict = view_of(
    Classification,
    "RulesVerdict",
    "How the rules classify the text, and why, line by line.",
    without=("post", "incident_id", "classified_at"),
    explanation=list[str],
)


def store(c: Context) -> RulesStore:
    return RulesStore(c.redis, c.keys)


async def in_use(c: Context) -> RulesDoc:
    """The rules in Redis; before any were published there, the rules file's."""
    doc = await store(c).current()
    if doc is not None:
        return doc
    path = c.settings.rules_file
    try:
        text = read_rules_file(path)
        engine = _compiled(text, str(path))
        changed = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except (ConfigError, OSError) as e:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"no rules in use: {e}") from e
    return RulesDoc(
        revision=0, version=engine.version, source=file_source(path), updated_at=changed, yaml=text
    )


@lru_cache(maxsize=8)
def _compiled(text: str, name: str = BODY) -> Engine:
    # Compiling takes milliseconds; the rules in use change rarely, tests come often.
    return compile_rules(text, name)


def rules_problems(e: ConfigError) -> JSONResponse:
    """422 with every problem as `body:LINE: reason`, and as data."""
    return JSONResponse(
        status_code=422,
        content={
            "error": str(e),
            "detail": [{"line": line, "msg": reason} for _, line, reason in e.problems],
        },
    )


@router.get("/v1/rules", dependencies=[Depends(auth.viewer)], response_model=RulesDoc)
async def get_rules(c: Context = Depends(ctx)) -> dict[str, Any]:
    """The rules in use: revision, version (as in each classification's `rules_version`), YAML."""
    return (await in_use(c)).model_dump(mode="json")


@router.get(
    "/v1/rules/history",
    dependencies=[Depends(auth.viewer)],
    response_model=list[RulesRevision],  # type: ignore[valid-type]
    response_model_exclude_unset=True,
)
async def rules_history(c: Context = Depends(ctx)) -> list[dict[str, Any]]:
    """The last revisions, newest first (without their YAML: GET /v1/rules/{revision})."""
    return [d.summary() for d in await store(c).history()]


@router.get("/v1/rules/{revision}", dependencies=[Depends(auth.viewer)], response_model=RulesDoc)
async def get_revision(revision: int, c: Context = Depends(ctx)) -> dict[str, Any]:
    doc = await store(c).at(revision)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rules revision {revision} kept")
    return doc.model_dump(mode="json")


@router.put(
    "/v1/rules",
    dependencies=[Depends(auth.admin)],
    response_model=RulesChange,
    response_model_exclude_unset=True,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/yaml": {"schema": {"type": "string"}}},
        }
    },
)
async def put_rules(
    request: Request,
    c: Context = Depends(ctx),
    if_match: Annotated[str | None, Header()] = None,
) -> Any:
    """Replace the rules: the body is a whole rules file (YAML). Validated first — a body that
    does not validate answers 422 with `body:LINE: reason` and changes nothing. With
    `If-Match: <revision>`, the change applies only if the rules are still at that revision."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return rules_problems(ConfigError([(BODY, None, "the body is not UTF-8 text")]))
    try:
        engine = _compiled(text)
    except ConfigError as e:
        return rules_problems(e)
    expected = _revision(if_match)
    try:
        doc, changed = await store(c).put(text, engine, "api", if_revision=expected)
    except RevisionConflict as e:
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED,
            f"If-Match: {expected}, but the rules are at revision {e.current}",
        ) from e
    note(request, target=str(doc.revision), changes={**doc.summary(), "changed": changed})
    return {**doc.summary(), "changed": changed}


def _revision(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    value = if_match.strip().strip('"')
    if not value.isdigit():
        raise HTTPException(422, "If-Match: expected a rules revision number")
    return int(value)


class RulesTest(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)
    source: str = Field(default="api", min_length=1, max_length=200)
    author: str | None = Field(default=None, max_length=200)
    hint: SourceHint | None = Field(
        default=None, description="A structured source's hint, as a status page or CAP gives it."
    )
    rules: str | None = Field(
        default=None, description="A rules file (YAML) to try instead of the rules in use."
    )


@router.post("/v1/rules/test", response_model=RulesVerdict, response_model_exclude_unset=True)
async def try_rules(
    body: Annotated[RulesTest, Body()],
    who: Principal = Depends(auth.viewer),
    c: Context = Depends(ctx),
) -> Any:
    """How the rules in use (or the `rules` given) classify a text, and why. Trying rules of
    your own (`rules`) needs the admin role: compiling them is a write-sized job."""
    if body.rules is not None:
        if not who.role.allows(Role.ADMIN):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"rules: token {who.name!r} is a {who.role.value}; trying rules needs admin",
            )
        try:
            engine = _compiled(body.rules)
        except ConfigError as e:
            return rules_problems(e)
    else:
        doc = await in_use(c)
        try:
            engine = _compiled(doc.yaml, f"revision {doc.revision}")
        except ConfigError as e:  # only if someone wrote bad rules to Redis by hand
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(e)) from e
    post = Post(text=body.text, source=body.source, author=body.author, hint=body.hint)
    result = engine.classify(post)
    return {
        **result.model_dump(mode="json", exclude={"post", "incident_id", "classified_at"}),
        "explanation": explain(result),
    }
