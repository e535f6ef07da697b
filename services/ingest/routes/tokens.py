"""/v1/tokens: named API tokens with a role (admin only); /v1/whoami: who a token is."""

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.ingest.audit import note
from services.ingest.context import Context, ctx
from shared import auth
from shared.auth import Principal, Role, TokenExists

router = APIRouter(tags=["tokens"])


class TokenSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="who the token is for")
    role: Role

    @field_validator("name")
    @classmethod
    def _usable(cls, name: str) -> str:
        if problem := auth.name_problem(name):
            raise ValueError(problem)
        return name


class TokenView(BaseModel):
    """A token as listed: never its secret."""

    name: str
    role: Role
    created_at: str
    created_by: str


class NewToken(TokenView):
    token: str = Field(description="the secret: shown once, here")


class WhoAmI(BaseModel):
    name: str
    role: Role
    authenticated: bool = Field(description="false: no tokens exist yet, anyone is admin")


@router.post("/v1/tokens", status_code=201, response_model=NewToken)
async def create_token(
    spec: TokenSpec,
    request: Request,
    who: Principal = Depends(auth.admin),
    c: Context = Depends(ctx),
) -> dict[str, Any]:
    """Create a token. Its value is in this answer only: it is stored as a digest."""
    try:
        record, token = await c.tokens.add(spec.name, spec.role, created_by=who.actor())
    except TokenExists:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"name: a token named {spec.name!r} exists (revoke it first)"
        ) from None
    note(request, target=spec.name, changes={"name": spec.name, "role": spec.role.value})
    return {**record.public(), "token": token}


@router.get("/v1/tokens", dependencies=[Depends(auth.admin)], response_model=list[TokenView])
async def list_tokens(c: Context = Depends(ctx)) -> list[dict[str, str]]:
    """Every token's name, role, and who made it when; never a token's value."""
    return [t.public() for t in await c.tokens.all()]


@router.delete("/v1/tokens/{name}", status_code=204, dependencies=[Depends(auth.admin)])
async def revoke_token(name: str, c: Context = Depends(ctx)) -> None:
    """Revoke a token: it stops working at once."""
    if not await c.tokens.revoke(name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token {name!r}")


@router.get("/v1/whoami", response_model=WhoAmI)
async def whoami(who: Principal = Depends(auth.viewer)) -> dict[str, Any]:
    """The name and role the token given acts as (`anonymous` admin while no token exists)."""
    return {"name": who.name, "role": who.role.value, "authenticated": who.authenticated}
