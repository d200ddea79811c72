"""The web app: pages served by ``freehold serve`` at ``/``, built on the native API.

Server-rendered Jinja templates and one small script (``static/app.js``) that calls the same
HTTP API a script would (/freehold, /v1). Every asset is in this package; nothing is
fetched from outside (tests load every page with the network blocked). ``ASSETS`` pins each
static file's SHA-256 so a change to one is deliberate.
"""

from __future__ import annotations

import hashlib
import html
import json
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from freehold.errors import UsageError

router = APIRouter(include_in_schema=False)
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@cache
def _env() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("freehold.web", "templates"),
                             autoescape=jinja2.select_autoescape(("html",)), trim_blocks=True, lstrip_blocks=True)
    from freehold.models import human_count, human_size

    env.filters["size"] = human_size
    env.filters["count"] = lambda n: f"{human_count(n)} parameters"
    env.filters["origin"] = describe_origin
    env.filters["num"] = lambda v: "-" if not isinstance(v, int | float) else f"{v:.3f}"
    return env


@cache
def _static(name: str) -> bytes:
    return resources.files("freehold.web").joinpath("static", name).read_bytes()


def asset_version() -> str:
    return hashlib.sha256(b"".join(_static(n) for n in ("app.css", "app.js"))).hexdigest()[:12]


def describe_origin(o: dict[str, Any]) -> str:
    kind = o.get("kind")
    if kind == "bundled":
        return f"bundled ({o.get('from')})"
    if kind == "tuned":
        return f"tuned from {o.get('from')} on {o.get('dataset')}"
    if kind == "exported":
        return f"exported from {o.get('from')} ({o.get('quant')})"
    return "imported" + (f" from {o.get('from')}" if o.get("from") else "")


def _page(request: Request, template: str, page: str, **context: Any) -> HTMLResponse:
    from freehold.server.auth import csrf_token

    text = _env().get_template(template).render(page=page, csrf=csrf_token(request), asset_version=asset_version(),
                                                **context)
    return HTMLResponse(text, headers={"Cache-Control": "no-store", "Content-Security-Policy": CSP})


# Only this origin: no CDN, font or script from outside can load even if a page asked for one.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def _store(request: Request) -> Any:
    return request.app.state.freehold.store


def _models(request: Request) -> tuple[list[dict[str, Any]], str | None]:
    from freehold.models import deployed, describe

    store = _store(request)
    return [describe(store, m) for m in store.list()], deployed(store)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    if "/" in name or name not in ASSETS or suffix not in STATIC_TYPES:
        raise UsageError(f"no such asset: {name}", "the pages link their own assets")
    return Response(_static(name), media_type=STATIC_TYPES[suffix],
                    headers={"Cache-Control": "public, max-age=3600"})


@router.get("/", response_model=None)
async def catalog(request: Request) -> Any:
    if "text/html" not in request.headers.get("accept", ""):  # API clients asking what this is
        from freehold import __version__

        return {"name": "freehold", "version": __version__, "openai": "/v1", "ollama": "/api",
                "native": "/freehold", "docs": "/docs", "metrics": "/metrics"}
    import os

    from freehold.engine.cpu import cpu_model

    models, default = await run_in_threadpool(_models, request)
    machine = f"{cpu_model() or 'CPU'}, {os.cpu_count()} cores"
    return _page(request, "catalog.html", "catalog", models=models, default=default, machine=machine)


@router.get("/models/{name:path}")
async def model_page(name: str, request: Request) -> HTMLResponse:
    from freehold.models import document

    store = _store(request)

    def load() -> dict[str, Any]:
        m = document(store, name)
        base = m["origin"].get("from") if m["origin"]["kind"] in ("tuned", "exported") else None
        base_evals: dict[str, Any] = {}
        if base and store.has(base):
            from freehold.evals.card import eval_records

            base_evals = {s: r.payload.get("scores") for s, r in eval_records(store, store.get(base)).items()}
        _, default = _models(request)
        pull_ref = None
        if request.app.state.freehold.options.registry:  # how another machine takes it from here
            repo, _sep, tag = m["name"].partition(":")
            pull_ref = f"{request.headers.get('host', '127.0.0.1')}/{repo}:{tag or 'latest'}"
        return {"m": m, "default": default, "base_name": base if base and store.has(base) else None,
                "pull_ref": pull_ref, "evals": eval_rows(m["evals"], base_evals), "card_html": markdown(m.get("card")),
                "lineage_svg": lineage_svg(m["lineage"]) if m.get("lineage") else None}

    return _page(request, "model.html", "model", **(await run_in_threadpool(load)))


@router.get("/datasets/{name:path}")
async def dataset_page(name: str, request: Request) -> HTMLResponse:
    from freehold.data.dataset import explain_filters, show_dataset

    store = _store(request)

    def load() -> dict[str, Any]:
        d = show_dataset(name, examples=12, seed=0, store=store)
        d["left_out"] = explain_filters(d)
        examples = [[{"role": m["role"], "pieces": marked(m["content"], [s[1:] for s in ex["pii_spans"] if s[0] == n])}
                     for n, m in enumerate(ex["messages"])] for ex in d["examples"]]
        replaced = sum((d.get("pii") or {}).get("replaced", {}).values())
        return {"d": d, "examples": examples, "replaced": replaced}

    return _page(request, "dataset.html", "dataset", **(await run_in_threadpool(load)))


@router.get("/runs/{run}")
async def run_page(run: str, request: Request) -> HTMLResponse:
    from freehold.ledger.ops import run_history

    def load() -> dict[str, Any]:
        r = run_history(_store(request), run)
        cfg = r["config"]  # the config record: its extra fields are at the top of the payload
        losses = [(s["step"], s["loss"]) for s in r["steps"] if isinstance(s.get("loss"), int | float)]
        hyper = {k: v for k, v in (cfg.get("hyperparameters") or {}).items() if not isinstance(v, dict | list)}
        return {"r": r, "points": _polyline(losses), "base": cfg.get("base_name"),
                "dataset": cfg.get("dataset_name"), "hyper": hyper}

    return _page(request, "run.html", "run", **(await run_in_threadpool(load)))


@router.get("/knowledge/{name:path}")
async def knowledge_page(name: str, request: Request) -> HTMLResponse:
    from freehold.knowledge import get_knowledge

    def load() -> dict[str, Any]:
        entry = get_knowledge(name, _store(request))
        cfg = entry.manifest.config
        sources = [{"name": s.get("name") or s.get("path") or s.get("title"), "kind": s.get("kind", "dataset"),
                    "passages": s.get("passages", "")} for s in cfg.get("sources", [])]
        return {"k": {"name": entry.name, "config": cfg}, "sources": sources}

    return _page(request, "knowledge.html", "knowledge", **(await run_in_threadpool(load)))


def _polyline(points: list[tuple[Any, float]]) -> str:
    """SVG polyline points for (x, y) pairs in the 600x200 chart box (the pages' loss charts)."""
    if not points:
        return ""
    xs, ys = [float(x) for x, _ in points], [float(y) for _, y in points]
    span_x, low, span_y = (max(xs) - min(xs)) or 1.0, min(ys), (max(ys) - min(ys)) or 1.0
    return " ".join(f"{5 + 590 * (x - min(xs)) / span_x:.1f},{195 - 185 * (y - low) / span_y:.1f}"
                    for x, y in zip(xs, ys, strict=True))


def marked(text: str, spans: list[list[Any]]) -> list[tuple[str, str | None]]:
    """``text`` cut into pieces, each with the type of personal data it replaced (or None)."""
    pieces: list[tuple[str, str | None]] = []
    at = 0
    for start, end, kind in sorted(spans):
        pieces += [(text[at:start], None), (text[start:end], str(kind))]
        at = end
    pieces.append((text[at:], None))
    return [p for p in pieces if p[0]]


@router.get("/chat")
async def chat_page(request: Request, model: str | None = None) -> HTMLResponse:
    models, default = await run_in_threadpool(_models, request)
    chat = [m for m in models if m["chat"]]
    names = [m["name"] for m in chat]
    selected = next((n for n in names if model and (n == model or n.split(":")[0] == model)), default or
                    (names[0] if names else None))
    chosen = next((m for m in chat if m["name"] == selected), None)
    base = None
    if chosen and chosen["origin"]["kind"] in ("tuned", "exported"):
        wanted = chosen["origin"].get("from") or ""
        base = next((n for n in names if n == wanted or n.split(":")[0] == wanted.split(":")[0]), None)
    return _page(request, "chat.html", "chat", models=chat, selected=selected, default=default,
                 base=base or (names[0] if names else None), compare=bool(base))


@router.get("/teach")
async def teach_page(request: Request) -> HTMLResponse:
    models, _ = await run_in_threadpool(_models, request)
    return _page(request, "teach.html", "teach", models=models)


@router.get("/jobs")
async def jobs_page(request: Request) -> HTMLResponse:
    return _page(request, "jobs.html", "jobs")


@router.get("/registry")
async def registry_page(request: Request, at: str | None = None) -> HTMLResponse:
    """Another machine's registry, browsed from here: its models, licences, cards and audits,
    each with a Pull button (a pull job on this server)."""
    from freehold.errors import FreeholdError
    from freehold.ledger.keys import trusted_keys
    from freehold.models import unaccepted
    from freehold.registry.client import browse

    store = _store(request)
    models: list[dict[str, Any]] = []
    error = None
    if at:
        try:
            models = await run_in_threadpool(browse, at, trusted=trusted_keys(store.home))
        except FreeholdError as exc:
            error = exc.message + (f" ({exc.hint})" if exc.hint else "")
        for m in models:
            m["card_html"] = markdown(m.get("card"))
            m["lineage_svg"] = lineage_svg(m["lineage_graph"], links=False) if m.get("lineage_graph") else None
            m["licence"]["accepted"] = not unaccepted(store, m["licence"]["name"], text=m["licence"].get("text"))
    return _page(request, "registry.html", "registry", at=at, models=models, error=error)


@router.get("/settings")
async def settings_page(request: Request) -> HTMLResponse:
    from freehold.server.store_api import settings_info

    return _page(request, "settings.html", "settings", s=await settings_info(request))


def error_page(request: Request, exc: Any) -> HTMLResponse:
    """A FreeholdError as a page (a removed model's link, a mistyped address)."""
    response = _page(request, "error.html", "error", error=exc)
    response.status_code = exc.http_status
    return response


# -- rendering helpers -----------------------------------------------------------------------
def markdown(text: str | None) -> str | None:
    """Markdown as HTML with raw HTML escaped (a card is data, never markup we trust)."""
    if not text:
        return None
    from markdown_it import MarkdownIt

    body = text
    if body.startswith("---\n"):  # the Hugging Face card's YAML front matter: shown as it is
        end = body.find("\n---", 4)
        if end > 0:
            front, body = body[4:end], body[end + 4:]
            return (f"<details><summary>Card metadata</summary><pre>{html.escape(front)}</pre></details>"
                    + MarkdownIt("commonmark", {"html": False}).enable("table").render(body))
    return str(MarkdownIt("commonmark", {"html": False}).enable("table").render(body))


def eval_rows(evals: dict[str, Any], base: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for suite, e in evals.items():
        for score, value in (e.get("scores") or {}).items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            other = (base.get(suite) or {}).get(score)
            rows.append({"suite": suite, "score": score, "value": value,
                         "base": other if isinstance(other, int | float) else None,
                         "bars": _bars(value, other if isinstance(other, int | float) else None)})
    return rows


def _bars(value: float, base: float | None) -> str:
    top = max(abs(value), abs(base or 0), 1e-9)
    w = lambda v: max(1, round(160 * abs(v) / top))  # noqa: E731 - a one-line scale
    rect = f'<rect x="0" y="2" height="8" width="{w(value)}" fill="#1f6f5c"><title>this model</title></rect>'
    if base is not None:
        rect += f'<rect x="0" y="13" height="8" width="{w(base)}" fill="#9aa5b1"><title>base</title></rect>'
    return f'<svg class="bars" width="164" height="24" role="img" aria-label="scores">{rect}</svg>'


def lineage_svg(lineage: dict[str, Any], links: bool = True) -> str:
    """The lineage graph (records as boxes, parent to child left to right) as inline SVG; a
    record that names a model or dataset in this store links to its page (``links``: not for a
    model on another machine, whose artefacts have no page here)."""
    nodes = {n["id"]: n for n in lineage["nodes"]}
    parents: dict[str, list[str]] = {}
    for e in lineage["edges"]:
        parents.setdefault(e["to"], []).append(e["from"])
    depth: dict[str, int] = {}

    def d(node: str, seen: frozenset[str] = frozenset()) -> int:
        if node not in depth:
            ps = [p for p in parents.get(node, []) if p in nodes and p not in seen]
            depth[node] = 1 + max((d(p, seen | {node}) for p in ps), default=-1)
        return depth[node]

    for n in nodes:
        d(n)
    columns: dict[int, list[str]] = {}
    for n in sorted(nodes, key=lambda k: nodes[k]["record"]):
        columns.setdefault(depth[n], []).append(n)
    box_w, box_h, gap_x, gap_y = 210, 46, 50, 18
    pos = {n: (10 + c * (box_w + gap_x), 10 + r * (box_h + gap_y))
           for c, col in columns.items() for r, n in enumerate(col)}
    width = 20 + (max(columns, default=0) + 1) * (box_w + gap_x)
    height = 20 + max((len(c) for c in columns.values()), default=1) * (box_h + gap_y)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="lineage of {html.escape(lineage["name"])}">']
    for e in lineage["edges"]:
        if e["from"] in pos and e["to"] in pos:
            (x1, y1), (x2, y2) = pos[e["from"]], pos[e["to"]]
            parts.append(f'<line x1="{x1 + box_w}" y1="{y1 + box_h / 2}" x2="{x2}" y2="{y2 + box_h / 2}" '
                         'stroke="#9aa5b1" stroke-width="1.5"/>')
    colours = {"import": "#e8f0fb", "dataset": "#fff4df", "config": "#eef7f4", "merge": "#f1ecfa",
               "export": "#f1ecfa", "checkpoint": "#f3f3f3"}
    for n, (x, y) in pos.items():
        node = nodes[n]
        label = str(node["label"])
        short = label if len(label) <= 34 else label[:33] + "…"
        fill = colours.get(node["type"], "#ffffff")
        text = (f'<text x="{x + 8}" y="{y + 18}" font-size="12" font-weight="600">{html.escape(node["type"])} · '
                f'record {node["record"]}</text><text x="{x + 8}" y="{y + 35}" font-size="12">'
                f'{html.escape(short)}</text>')
        link = _node_link(node) if links else None
        body = (f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" fill="{fill}" stroke="#c5ccd3">'
                f'<title>{html.escape(label)}</title></rect>{text}')
        parts.append(f'<a href="{html.escape(link)}">{body}</a>' if link else body)
    parts.append("</svg>")
    return "".join(parts)


def _node_link(node: dict[str, Any]) -> str | None:
    """Where a lineage record's artefact has a page: a model it imported or exported, a dataset."""
    from urllib.parse import quote

    p = node.get("payload") or {}
    name, run = p.get("name"), p.get("run")
    if node["type"] in ("config", "merge", "checkpoint") and isinstance(run, str):
        return "/runs/" + quote(run, safe=":")
    if not isinstance(name, str):
        return None
    if node["type"] == "export" and p.get("method") == "knowledge-index":
        return "/knowledge/" + quote(name, safe=":")
    if node["type"] in ("import", "export"):
        return "/models/" + quote(name, safe=":")
    if node["type"] == "dataset":
        return "/datasets/" + quote(name, safe=":")
    return None


# The pinned assets: a change to one must come with its new digest here (tests check both).
ASSETS: dict[str, str] = json.loads(resources.files("freehold.web").joinpath("static", "ASSETS.json").read_text())
