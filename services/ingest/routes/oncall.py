"""/v1/people and /v1/schedules: who can be paged, and who is on call when.

People's contacts (apprise URLs) are masked in every answer. A schedule names only known people
(422 naming the unknown one); a person still named by a schedule cannot be deleted (409).
Schedules and people export their shifts as iCalendar (`…/oncall.ics`) for calendar apps.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from services.ingest.context import Context, ctx
from services.ingest.contracts import view_of
from shared import auth, ical
from shared.people import MAX_PEOPLE, PeopleStore, Person, PersonSpec, keep_masked_contacts, public
from shared.schedules import (
    MAX_SCHEDULES,
    Schedule,
    ScheduleSpec,
    ScheduleStore,
    Segment,
    on_call,
    timeline,
)

router = APIRouter(tags=["on-call"])

ICAL_TYPE = "text/calendar; charset=utf-8"
MAX_ICAL_DAYS = 366


class CalendarResponse(Response):
    """An iCalendar file (RFC 5545)."""

    media_type = ICAL_TYPE


PersonView = view_of(Person, "PersonView", "A person; contacts masked.", contacts=list[str])


class OnCallAnswer(BaseModel):
    """Who is on call on a schedule at a time (all None: nobody), and why."""

    schedule: str
    at: str
    person: str | None
    via: str | None = Field(description="the rotation or override that decided it")
    since: str | None
    until: str | None = Field(description="None: no end known")


ScheduleView = view_of(
    Schedule, "ScheduleView", "A schedule, and who is on call now.", on_call=OnCallAnswer
)


def people(c: Context = Depends(ctx)) -> PeopleStore:
    return PeopleStore(c.redis, c.keys)


def schedules(c: Context = Depends(ctx)) -> ScheduleStore:
    return ScheduleStore(c.redis, c.keys)


def _invalid(loc: tuple[Any, ...], msg: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", *loc), "msg": msg, "type": "value_error"}])


# --- people ---------------------------------------------------------------------------------------


@router.post(
    "/v1/people",
    status_code=201,
    dependencies=[Depends(auth.admin)],
    response_model=PersonView,
    responses={200: {"model": PersonView, "description": "Replaced"}},
    response_model_exclude_unset=True,
)
async def put_person(
    body: dict[str, Any], response: Response, store: PeopleStore = Depends(people)
) -> dict[str, Any]:
    """Create a person, or replace one of the same name (200); masked contacts sent back as GET
    showed them keep their real values."""
    old = await store.get(body["name"]) if isinstance(body.get("name"), str) else None
    try:
        spec = PersonSpec.model_validate(keep_masked_contacts(body, old))
    except ValidationError as e:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in e.errors()]
        ) from None
    if old is None and await store.count() >= MAX_PEOPLE:
        raise _invalid(("name",), f"at most {MAX_PEOPLE} people")
    person = Person(**spec.model_dump())
    if old is not None:
        person = person.model_copy(
            update={"created_at": old.created_at, "updated_at": person.created_at}
        )
        response.status_code = status.HTTP_200_OK
    await store.put(person)
    return public(person)


@router.get(
    "/v1/people",
    response_model=list[PersonView],  # type: ignore[valid-type]
    response_model_exclude_unset=True,
)
async def list_people(store: PeopleStore = Depends(people)) -> list[dict[str, Any]]:
    return [public(p) for p in await store.all()]


async def _person(store: PeopleStore, name: str) -> Person:
    person = await store.get(name)
    if person is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no person {name!r}")
    return person


@router.get("/v1/people/{name}", response_model=PersonView, response_model_exclude_unset=True)
async def get_person(name: str, store: PeopleStore = Depends(people)) -> dict[str, Any]:
    return public(await _person(store, name))


@router.delete("/v1/people/{name}", status_code=204, dependencies=[Depends(auth.admin)])
async def delete_person(
    name: str,
    store: PeopleStore = Depends(people),
    scheds: ScheduleStore = Depends(schedules),
) -> Response:
    await _person(store, name)
    using = [s.name for s in await scheds.all() if name in {p for _, p in s.people()}]
    if using:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{name!r} is on schedule(s) {', '.join(using)}: edit them first",
        )
    await store.delete(name)
    return Response(status_code=204)


@router.get("/v1/people/{name}/oncall.ics", response_class=CalendarResponse)
async def person_calendar(
    name: str,
    days: int = Query(28, ge=1, le=MAX_ICAL_DAYS),
    store: PeopleStore = Depends(people),
    scheds: ScheduleStore = Depends(schedules),
) -> Response:
    """Every shift of one person, on every schedule, from now on."""
    await _person(store, name)
    now = datetime.now(UTC)
    events = []
    for s in await scheds.all():
        events += [
            _event(s, g) for g in timeline(s, now, now + timedelta(days=days)) if g.person == name
        ]
    events.sort(key=lambda e: e.start)
    return Response(ical.calendar(f"{name} on call", events, now), media_type=ICAL_TYPE)


# --- schedules ------------------------------------------------------------------------------------


@router.post(
    "/v1/schedules",
    status_code=201,
    dependencies=[Depends(auth.admin)],
    response_model=ScheduleView,
    responses={200: {"model": ScheduleView, "description": "Replaced"}},
    response_model_exclude_unset=True,
)
async def put_schedule(
    spec: ScheduleSpec,
    response: Response,
    store: ScheduleStore = Depends(schedules),
    persons: PeopleStore = Depends(people),
) -> dict[str, Any]:
    """Create a schedule, or replace one of the same name (200)."""
    known = await persons.names()
    for loc, name in spec.people():
        if name not in known:
            raise _invalid(loc, f"no person {name!r} (create it with POST /v1/people)")
    old = await store.get(spec.name)
    if old is None and await store.count() >= MAX_SCHEDULES:
        raise _invalid(("name",), f"at most {MAX_SCHEDULES} schedules")
    schedule = Schedule(**spec.model_dump())
    if old is not None:
        schedule = schedule.model_copy(
            update={"created_at": old.created_at, "updated_at": schedule.created_at}
        )
        response.status_code = status.HTTP_200_OK
    await store.put(schedule)
    return _shown(schedule, datetime.now(UTC))


def _shown(s: Schedule, now: datetime) -> dict[str, Any]:
    return {**s.model_dump(mode="json"), "on_call": _answer(s, now)}


def _answer(s: ScheduleSpec, at: datetime) -> dict[str, Any]:
    found = on_call(s, at)
    return {
        "schedule": s.name,
        "at": at.isoformat(),
        "person": found.person if found else None,
        "via": found.via if found else None,
        "since": found.start.isoformat() if found else None,
        "until": found.end.isoformat() if found and found.end else None,
    }


@router.get(
    "/v1/schedules",
    response_model=list[ScheduleView],  # type: ignore[valid-type]
    response_model_exclude_unset=True,
)
async def list_schedules(store: ScheduleStore = Depends(schedules)) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [_shown(s, now) for s in await store.all()]


async def _schedule(store: ScheduleStore, name: str) -> Schedule:
    s = await store.get(name)
    if s is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {name!r}")
    return s


@router.get("/v1/schedules/{name}", response_model=ScheduleView, response_model_exclude_unset=True)
async def get_schedule(name: str, store: ScheduleStore = Depends(schedules)) -> dict[str, Any]:
    return _shown(await _schedule(store, name), datetime.now(UTC))


@router.delete("/v1/schedules/{name}", status_code=204, dependencies=[Depends(auth.admin)])
async def delete_schedule(name: str, store: ScheduleStore = Depends(schedules)) -> Response:
    await _schedule(store, name)
    await store.delete(name)
    return Response(status_code=204)


@router.get("/v1/schedules/{name}/oncall", response_model=OnCallAnswer)
async def who_is_on_call(
    name: str,
    at: datetime | None = Query(None, description="ISO 8601 with a zone; default now"),
    store: ScheduleStore = Depends(schedules),
) -> dict[str, Any]:
    if at is not None and at.tzinfo is None:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "at"),
                    "msg": "give a time zone (…Z or +02:00)",
                    "type": "value_error",
                }
            ]
        )
    return _answer(await _schedule(store, name), (at or datetime.now(UTC)).astimezone(UTC))


@router.get("/v1/schedules/{name}/oncall.ics", response_class=CalendarResponse)
async def schedule_calendar(
    name: str,
    days: int = Query(28, ge=1, le=MAX_ICAL_DAYS),
    store: ScheduleStore = Depends(schedules),
) -> Response:
    """The schedule's shifts from now on, one event each."""
    s = await _schedule(store, name)
    now = datetime.now(UTC)
    events = [_event(s, g) for g in timeline(s, now, now + timedelta(days=days))]
    return Response(ical.calendar(f"{s.name} on call", events, now), media_type=ICAL_TYPE)


def _event(s: Schedule, g: Segment) -> ical.Event:
    return ical.Event(
        uid=f"{s.name}-{g.person}-{int(g.start.timestamp())}@redalert",
        start=g.start,
        end=g.end,
        summary=f"On call: {g.person} ({s.name})",
        description=f"{s.name}: {g.via}",
    )
