"""The rules workbench: edit the rules with errors at their line, try a text as you type,
evaluate a draft against the labelled sets and operators' corrections, backtest it against
recent traffic, save it, and go back to an earlier revision.

Compiling rules and classifying hundreds of posts take seconds of CPU: that work runs in a
thread, so the event loop keeps serving pages and event streams meanwhile.
"""

import asyncio
import difflib
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from services.classify.rules import ConfigError, Engine, compile_rules
from services.classify.rules.backtest import backtest
from services.classify.rules.evaluate import Labelled, as_labelled, evaluate, read_labelled
from services.classify.rules.explain import verdict
from services.classify.rules.store import RevisionConflict, RulesStore
from services.classify.rules.suggest import suggest
from services.ingest.console.base import acting, render, templates, viewer
from services.ingest.console.incidents import engine_for as engine_in_use
from services.ingest.console.session import Session
from services.ingest.context import Context, ctx
from services.ingest.routes.rules import in_use
from shared import keys
from shared.codec import DecodeError, decode
from shared.corrections import iter_corrections
from shared.models import Classification, Post

router = APIRouter(include_in_schema=False)

DRAFT = "draft"  # the name problems are reported under: "draft:12: reason"
BACKTESTED = 1_000  # recent classified posts a draft is backtested against
SUGGEST_TRIED = 5
TREND_REVISIONS = 10


class Draft(BaseModel):
    rules: str = Field(max_length=1_000_000)


class Trial(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)
    rules: str | None = Field(default=None, max_length=1_000_000)
    source: str = Field(default="console", min_length=1, max_length=200)


class Saving(Draft):
    revision: int = Field(ge=0)


def problems(e: ConfigError) -> list[dict[str, Any]]:
    return [{"line": line, "msg": reason} for _, line, reason in e.problems]


async def _compile(text: str) -> Engine:
    return await asyncio.to_thread(compile_rules, text, DRAFT)


def _refused(e: ConfigError) -> JSONResponse:
    return JSONResponse({"ok": False, "problems": problems(e)}, status_code=422)


async def labelled_sets(c: Context) -> dict[str, list[Labelled]]:
    """The labelled files of REDALERT_LABELLED_DIR, and operators' corrections."""
    folder = c.settings.labelled_dir
    sets = await asyncio.to_thread(_read_dir, folder) if folder is not None else {}
    sets["corrections"] = [as_labelled(x) async for x in iter_corrections(c.redis, c.keys)]
    return sets


def _read_dir(folder: Path) -> dict[str, list[Labelled]]:
    sets = {}
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        try:
            sets[path.name] = read_labelled(path)
        except ConfigError:
            continue  # a broken file is `redalert rules eval`'s to report
    return sets


async def recent(c: Context, last: int = BACKTESTED) -> list[Classification]:
    entries = await c.redis.xrevrange(c.keys.stream(keys.CLASSIFIED), count=last)
    out = []
    for _id, fields in reversed(entries):
        try:
            out.append(decode(fields, Classification))
        except DecodeError:
            continue
    return out


# --- the page ------------------------------------------------------------------------------------


@router.get("/rules", response_class=HTMLResponse)
async def workbench(
    request: Request, session: Session = Depends(viewer), c: Context = Depends(ctx)
) -> HTMLResponse:
    doc = await in_use(c)
    history = await RulesStore(c.redis, c.keys).history()
    diff_of = request.query_params.get("diff")
    diff = None
    if diff_of and diff_of.isdigit():
        diff = _diff(history, int(diff_of))
    return render(
        request,
        session,
        "rules.html",
        doc=doc,
        history=history,
        diff=diff,
        diff_of=diff_of,
        message=request.query_params.get("message", ""),
    )


def _diff(history: list[Any], revision: int) -> str | None:
    """The change a revision made, as a unified diff against the one before it."""
    by_rev = {d.revision: d for d in history}
    doc = by_rev.get(revision)
    if doc is None:
        return None
    before = next((d for d in history if d.revision < revision), None)
    old = before.yaml if before else ""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        doc.yaml.splitlines(keepends=True),
        fromfile=f"revision {before.revision}" if before else "(nothing)",
        tofile=f"revision {revision}",
    )
    return "".join(lines) or "(no change in the text)"


# --- what the page's script asks -----------------------------------------------------------------


@router.post("/console/rules/check")
async def check(request: Request, body: Draft) -> Response:
    await acting(request, "rules", changes=False)
    try:
        engine = await _compile(body.rules)
    except ConfigError as e:
        return _refused(e)
    return JSONResponse({"ok": True, "version": engine.version, "problems": []})


@router.post("/console/rules/try")
async def try_text(request: Request, body: Trial, c: Context = Depends(ctx)) -> Response:
    """How a draft (admins) or the rules in use (everyone) classify a text, highlighted."""
    if body.rules is not None:
        await acting(request, "rules", changes=False)
        try:
            engine = await _compile(body.rules)
        except ConfigError as e:
            return _refused(e)
    else:
        await viewer(request)
        engine = engine_in_use((await in_use(c)).yaml)
    result = engine.classify(Post(text=body.text, source=body.source))
    html = templates.get_template("_trial.html").render(c=result, verdict=verdict(result))
    return JSONResponse({"ok": True, "severity": result.severity.value, "html": html})


@router.post("/console/rules/eval")
async def evaluate_draft(request: Request, body: Draft, c: Context = Depends(ctx)) -> Response:
    await acting(request, "rules", changes=False)
    try:
        engine = await _compile(body.rules)
    except ConfigError as e:
        return _refused(e)
    sets = await labelled_sets(c)

    def run() -> list[tuple[str, Any]]:
        return [(name, evaluate(engine, items)) for name, items in sets.items()]

    reports = await asyncio.to_thread(run)
    html = templates.get_template("_eval.html").render(reports=reports, version=engine.version)
    return JSONResponse({"ok": True, "html": html})


@router.post("/console/rules/backtest")
async def backtest_draft(request: Request, body: Draft, c: Context = Depends(ctx)) -> Response:
    await acting(request, "rules", changes=False)
    try:
        engine = await _compile(body.rules)
    except ConfigError as e:
        return _refused(e)
    recorded = await recent(c)
    report = await asyncio.to_thread(backtest, engine, recorded, 5)
    html = templates.get_template("_backtest.html").render(b=report)
    return JSONResponse({"ok": True, "changed": report.changed, "n": report.n, "html": html})


@router.post("/console/rules/save")
async def save(request: Request, body: Saving, c: Context = Depends(ctx)) -> Response:
    session = await acting(request, "rules")
    try:
        engine = await _compile(body.rules)
    except ConfigError as e:
        return _refused(e)
    store = RulesStore(c.redis, c.keys)
    try:
        doc, changed = await store.put(
            body.rules, engine, f"console ({session.who.name})", if_revision=body.revision
        )
    except RevisionConflict as e:
        return JSONResponse(
            {
                "ok": False,
                "problems": [
                    {
                        "line": None,
                        "msg": f"the rules changed meanwhile (now revision {e.current}): "
                        "reload the page and make your change again",
                    }
                ],
            },
            status_code=412,
        )
    return JSONResponse({"ok": True, "revision": doc.revision, "changed": changed})


@router.post("/console/rules/suggest")
async def suggest_cues(request: Request, c: Context = Depends(ctx)) -> Response:
    """Cues mined from operators' corrections, each measured on every labelled set."""
    await acting(request, "rules", changes=False)
    engine = engine_in_use((await in_use(c)).yaml)
    sets = await labelled_sets(c)
    traffic = await recent(c)
    found = await asyncio.to_thread(
        suggest, engine, sets["corrections"], sets, 5, SUGGEST_TRIED, traffic
    )
    html = templates.get_template("_suggest.html").render(found=found, n=len(sets["corrections"]))
    return JSONResponse({"ok": True, "html": html})


@router.post("/rules/rollback/{revision}")
async def rollback(
    request: Request, revision: int, csrf: str = Form(""), c: Context = Depends(ctx)
) -> Response:
    session = await acting(request, "rules", csrf)
    store = RulesStore(c.redis, c.keys)
    doc = await store.at(revision)
    if doc is None:
        raise HTTPException(404, f"no rules revision {revision} kept")
    try:
        engine = await _compile(doc.yaml)
    except ConfigError as e:
        raise HTTPException(422, str(e)) from None
    new, _ = await store.put(doc.yaml, engine, f"console ({session.who.name}), back to {revision}")
    return RedirectResponse(
        f"/rules?message=Rolled back: revision {new.revision} is revision {revision}'s rules.",
        status_code=303,
    )


@lru_cache(maxsize=16)
def _compiled_revision(text: str) -> Engine:
    return compile_rules(text, "revision")


@router.post("/console/rules/trend")
async def trend(request: Request, c: Context = Depends(ctx)) -> Response:
    """How each kept revision does on operators' corrections: the quality trend."""
    await acting(request, "rules", changes=False)
    history = (await RulesStore(c.redis, c.keys).history())[:TREND_REVISIONS]
    corrections = [as_labelled(x) async for x in iter_corrections(c.redis, c.keys)]

    def run() -> list[dict[str, Any]]:
        rows = []
        for doc in history:
            try:
                report = evaluate(_compiled_revision(doc.yaml), corrections)
            except ConfigError:
                continue
            agree = report.n - len(report.misclassified)
            rows.append({"doc": doc, "n": report.n, "agree": agree, "f1": report.macro_f1})
        return rows

    rows = await asyncio.to_thread(run)
    html = templates.get_template("_trend.html").render(rows=rows, n=len(corrections))
    return JSONResponse({"ok": True, "html": html})
