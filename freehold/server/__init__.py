"""The HTTP server: OpenAI (/v1) and Ollama (/api) APIs over one native path, with
continuous batching, API keys, CORS, Prometheus metrics and one JSON error shape per API.

    app = create_app(ServerOptions(...))   # an ASGI app (tests drive it in process)
    serve(ServerOptions(...))              # uvicorn on host:port
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from freehold import __version__
from freehold.config import ServerOptions, Settings, load_settings
from freehold.errors import FreeholdError, UsageError
from freehold.server.metrics import Metrics
from freehold.server.models import ModelManager
from freehold.store import Store

API_KEY_ENV = "FREEHOLD_API_KEY"


def load_api_keys(cli_keys: list[str], keys_file: Path | None, settings: Settings | None = None) -> list[str]:
    """The keys the server accepts: ``--api-key``, then FREEHOLD_API_KEY (``settings.api_key``), then the file."""
    keys = [k for k in cli_keys if k]
    keys += (settings or load_settings()).api_keys
    if keys_file is not None:
        try:
            lines = keys_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UsageError(f"cannot read the keys file {keys_file}: {exc.strerror}", "check the path") from exc
        keys += [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    return keys


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(options: ServerOptions) -> None:
    if not is_loopback(options.host) and not options.api_keys:
        raise UsageError(
            f"refusing to listen on {options.host} without an API key: anyone on the network could use it",
            f"set a key with --api-key KEY, the {API_KEY_ENV} environment variable or --api-keys-file FILE "
            "(clients send 'Authorization: Bearer KEY'), or bind to 127.0.0.1")


class FreeholdState:
    def __init__(self, settings: Settings, options: ServerOptions, store: Store) -> None:
        self.settings = settings
        self.options = options
        self.store = store
        self.metrics = Metrics()
        from freehold.guardrails import OFF, Guardrails, PolicySet, load_policy

        policies = PolicySet(OFF) if options.no_guardrails else load_policy(options.guardrails)
        rails = Guardrails(policies, store, lambda rail, action: self.metrics.guardrail.labels(rail, action).inc())
        from freehold.agents.mcp_client import ToolServers

        self.tool_servers = ToolServers.from_options(options.mcp_config, store.home, options.tool_timeout,
                                                     options.max_tool_calls)
        self.models = ModelManager(store, settings, slots=options.slots, max_queue=options.max_queue,
                                   keep_alive=options.keep_alive, max_loaded=options.max_loaded,
                                   knowledge=options.knowledge, on_step=self.metrics.on_step,
                                   declared_use=options.declared_use, guardrails=rails,
                                   tool_servers=self.tool_servers)
        from pathlib import Path

        from freehold.agents.a2a import Agents, load_agents
        from freehold.engine.embedder import NAMES, minilm_dir

        self.agents = Agents(self, load_agents(Path(options.agents) if options.agents else None, store.home),
                             keyed=bool(options.api_keys))
        self.embedders = NAMES if minilm_dir() is not None else ()
        self._minilm: Any = None

    async def embed(self, model: str, texts: list[str]) -> tuple[list[list[float]], int, str]:
        if model in self.embedders:
            from freehold.engine.embedder import SentenceEmbedder

            def run() -> tuple[list[list[float]], int, str]:
                if self._minilm is None:
                    self._minilm = SentenceEmbedder()
                return self._minilm.embed(texts), self._minilm.count_tokens(texts), SentenceEmbedder.name

            return await run_in_threadpool(run)

        def run_model() -> tuple[list[list[float]], int, str]:
            with self.models.use(model) as engine:
                n = sum(len(engine.backend.tokenize(t)) for t in texts)
                return engine.embed(texts), n, engine.name

        return await run_in_threadpool(run_model)


def _error(path: str, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
           param: str | None = None, headers: dict[str, str] | None = None,
           error: FreeholdError | None = None) -> JSONResponse:
    """One error shape per API: Ollama's ``{"error": text}``, OpenAI's ``{"error": {message, type,
    param, code}}``; a Freehold error adds ``"freehold": error.to_dict()`` so a client rebuilds it."""
    extra = {"freehold": error.to_dict()} if error is not None else {}
    if path == "/v2" or path.startswith("/v2/"):  # the OCI distribution spec's error body
        from freehold.errors import RegistryError

        oci_code = error.oci_code if isinstance(error, RegistryError) else OCI_CODES.get(status, "UNKNOWN")
        return _oci_error(status, oci_code, error.message if error is not None else message,
                          error.hint if error is not None else None, headers)
    if path.startswith("/api/"):
        return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code, **extra}},
                        status_code=status, headers=headers)


OCI_CODES = {400: "UNSUPPORTED", 401: "UNAUTHORIZED", 403: "DENIED", 404: "NOT_FOUND", 405: "UNSUPPORTED",
             413: "SIZE_INVALID", 429: "TOOMANYREQUESTS"}


class BodyLimit:
    """Refuse request bodies over a limit (declared or streamed) with 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in UNLIMITED_PATHS or path.startswith("/v2/"):  # streamed to disk under their own limits
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_big = _error(path, 413, f"request body is over the {self.limit} byte limit",
                         code="request_too_large")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_big(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await too_big(scope, receive, send)


class _TooLarge(Exception):
    pass


OPEN_PATHS = ("/health", "/metrics", "/api/version", "/login", "/static/app.css")
UNLIMITED_PATHS = ("/freehold/uploads",)


def create_app(options: ServerOptions | None = None, settings: Settings | None = None,
               store: Store | None = None) -> FastAPI:
    options = options or ServerOptions()
    settings = settings or load_settings()
    from freehold.home import open_store

    state = FreeholdState(settings, options, store or open_store(settings))
    from freehold.agents import build_mcp_server

    mcp = build_mcp_server(state)  # /mcp: streamable HTTP, behind the same keys as the APIs
    mcp_routes = mcp.streamable_http_app(streamable_http_path="/mcp", host=options.host).routes

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        from freehold.jobs import Worker

        worker = Worker(state.store.home).start() if options.jobs else None  # runs the queued jobs
        try:
            async with mcp.session_manager.run():
                yield
        finally:
            if worker is not None:
                await run_in_threadpool(worker.stop)  # a running job checkpoints and is queued again
            await state.agents.aclose()
            state.models.close()
            await run_in_threadpool(state.tool_servers.close)  # the MCP servers' processes stop

    app = FastAPI(title="Freehold", version=__version__, lifespan=lifespan,
                  description="OpenAI- and Ollama-compatible API over local models.")
    app.state.freehold = state
    app.router.routes[0:0] = mcp_routes

    from freehold.server import a2a_api, jobs_api, ollama_api, openai_api, store_api

    app.include_router(a2a_api.router)
    app.include_router(openai_api.router)
    app.include_router(ollama_api.router)
    app.include_router(jobs_api.router)
    app.include_router(store_api.router)
    from freehold.registry import server as registry_server

    app.include_router(registry_server.router)
    from freehold import web
    from freehold.server import auth

    app.include_router(auth.router)
    app.include_router(web.router)
    _add_error_handlers(app)
    _add_auth_and_metrics(app, state, options)
    _add_service_routes(app, state)
    if options.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=options.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], allow_credentials=False)
    app.add_middleware(BodyLimit, limit=options.max_body_bytes)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error in the API's own shape: Freehold's with their code, validation errors as
    400 naming each problem, unknown paths and methods, and anything unexpected as a 500."""

    @app.exception_handler(FreeholdError)
    async def freehold_error(request: Request, exc: FreeholdError) -> Response:
        from freehold.errors import RegistryError, ToolServerError

        status = exc.status if isinstance(exc, RegistryError | ToolServerError) else exc.http_status
        if _wants_page(request):  # a person following a link: the same message, as a page
            from freehold.web import error_page

            return error_page(request, exc)
        message = exc.message + (f" ({exc.hint})" if exc.hint else "")
        kind = {404: "not_found_error", 503: "server_busy"}.get(
            status, "server_error" if status >= 500 else "invalid_request_error")
        headers = {"Retry-After": "2"} if status == 503 else None
        return _error(request.url.path, status, message, kind, exc.code, headers=headers, error=exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        param = None
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            param = param or loc or None
            problems.append(f"{loc or 'body'}: {err.get('msg')}")
        return _error(request.url.path, 400, "invalid request: " + "; ".join(problems), param=param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        return _error(request.url.path, exc.status_code, message, code=str(exc.status_code))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _error(request.url.path, 500, f"internal error: {type(exc).__name__}: {exc}", "server_error")


def _wants_page(request: Request) -> bool:
    path = request.url.path
    api = path.startswith(("/v1", "/api", "/freehold", "/docs", "/openapi", "/static"))
    return not api and request.method == "GET" and "text/html" in request.headers.get("accept", "")


def _add_auth_and_metrics(app: FastAPI, state: FreeholdState, options: ServerOptions) -> None:
    """API keys (Bearer, or the pages' login cookie) on everything but OPEN_PATHS, CSRF checks on
    changes (``freehold.server.auth``), and a request count per API, route and status."""
    from freehold.agents.a2a import is_card_path
    from freehold.server.auth import bearer_ok, cookie_key, csrf_problem

    @app.middleware("http")
    async def auth_and_count(request: Request, call_next: Any) -> Response:
        path = request.url.path
        api = ("openai" if path.startswith("/v1") else "ollama" if path.startswith("/api") else
               "mcp" if path == "/mcp" else "a2a" if path.startswith("/a2a/") else "other")
        by_cookie = False
        if path == "/v2" or path.startswith("/v2/"):
            refused = registry_refusal(request, options)
            if refused is not None:
                state.metrics.requests.labels("registry", path, str(refused.status_code)).inc()
                return refused
            return await call_next(request)  # Bearer or Basic keys, no cookies: no CSRF to check
        if options.api_keys and path not in OPEN_PATHS and not is_card_path(path) and request.method != "OPTIONS":
            by_cookie = not bearer_ok(request, options.api_keys) and cookie_key(request, options.api_keys)
            if not by_cookie and not bearer_ok(request, options.api_keys):
                state.metrics.requests.labels(api, path, "401").inc()
                if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                    from urllib.parse import quote

                    from fastapi.responses import RedirectResponse

                    return RedirectResponse(f"/login?next={quote(path)}", status_code=303)  # a person: log in
                token = request.headers.get("authorization", "")
                return _error(path, 401, "missing or invalid API key" if token else "missing API key",
                              "authentication_error", "invalid_api_key",
                              headers={"WWW-Authenticate": "Bearer"})
        problem = None if bearer_ok(request, options.api_keys) else csrf_problem(request, by_cookie)
        if problem:
            state.metrics.requests.labels(api, path, "403").inc()
            return _error(path, 403, problem, "permission_error", "csrf")
        response: Response = await call_next(request)
        route = request.scope.get("route")
        state.metrics.requests.labels(api, getattr(route, "path", "unmatched"), str(response.status_code)).inc()
        return response


def registry_refusal(request: Request, options: ServerOptions) -> Response | None:
    """Who may use /v2/: pulls (GET, HEAD) with an API key or a push key when the server has
    keys (anyone when it has none, or with ``registry_open_pull``); pushes with a push key only.
    Registry clients send the key as a Bearer token or as the password of Basic auth."""
    from freehold.server.auth import presented_key

    key = presented_key(request)
    pull = request.method in ("GET", "HEAD")
    allowed = options.push_keys + (options.api_keys if pull else [])
    if key and any(hmac.compare_digest(key.encode(), k.encode()) for k in allowed):
        request.state.registry_key = key
        return None
    if pull and (not options.api_keys or options.registry_open_pull):
        return None
    if not pull and not options.push_keys:
        return _oci_error(403, "DENIED", "this registry takes no pushes",
                          "start the server with --push-key KEY (or FREEHOLD_PUSH_KEY) and push with that key")
    if not pull and key and any(hmac.compare_digest(key.encode(), k.encode()) for k in options.api_keys):
        return _oci_error(403, "DENIED", "this key may pull from the registry but not push",
                          "push with one of the server's push keys (--push-key)")
    message = "invalid key" if key else "a push needs a push key" if not pull else "this registry needs an API key"
    return _oci_error(401, "UNAUTHORIZED", message,
                      "pass --key KEY (or FREEHOLD_REGISTRY_KEY) to 'freehold push' / 'freehold pull'",
                      {"WWW-Authenticate": 'Basic realm="freehold"'})


def _oci_error(status: int, code: str, message: str, hint: str | None = None,
               headers: dict[str, str] | None = None) -> JSONResponse:
    detail = {"hint": hint} if hint else {}
    return JSONResponse({"errors": [{"code": code, "message": message, "detail": detail}]}, status_code=status,
                        headers={**(headers or {}), "Docker-Distribution-API-Version": "registry/2.0"})


def _add_service_routes(app: FastAPI, state: FreeholdState) -> None:
    """/health and /metrics (Prometheus); / is the web app's (``freehold.web``)."""

    @app.get("/health")
    async def health() -> Any:
        return {"status": "ok", "version": __version__, "models_loaded": len(state.models.loaded()),
                "active_sequences": state.models.active_sequences(), "queued": state.models.queue_depth()}

    @app.get("/metrics")
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        state.metrics.queue_depth.set(state.models.queue_depth())
        state.metrics.active.set(state.models.active_sequences())
        state.metrics.models_loaded.set(len(state.models.loaded()))
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def serve(options: ServerOptions, settings: Settings | None = None) -> None:
    import uvicorn

    check_exposure(options)
    app = create_app(options, settings)
    uvicorn.run(app, host=options.host, port=options.port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=5)
