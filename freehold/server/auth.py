"""Who may use the server: API keys for programs, a login cookie for the pages, CSRF checks.

- Scripts send ``Authorization: Bearer KEY`` (when the server has keys; on loopback with none,
  everything is open to this machine).
- A browser logs in once at ``/login`` with a key; the server sets an HttpOnly, SameSite=Strict
  cookie holding an HMAC of that key (never the key itself).
- A state-changing request (POST, PUT, PATCH, DELETE) from a browser must come from this
  server's own pages: a cross-site ``Origin`` / ``Sec-Fetch-Site`` is refused, and one that is
  authenticated by the cookie must carry the page's CSRF token in ``X-Freehold-CSRF``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import os
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

COOKIE = "freehold_session"
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
router = APIRouter(include_in_schema=False)
_SECRET = os.urandom(32)  # per server process: tokens do not outlive it


def session_value(key: str) -> str:
    return hmac.new(key.encode(), b"freehold-session", hashlib.sha256).hexdigest()


def cookie_key(request: Request, keys: list[str]) -> bool:
    value = request.cookies.get(COOKIE, "")
    return bool(value) and any(hmac.compare_digest(value, session_value(k)) for k in keys)


def presented_key(request: Request) -> str:
    """The key a client sent: a Bearer token, or the password of Basic auth (what registry
    clients such as docker, oras and skopeo send); empty when none."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        import base64
        import binascii

        try:
            return base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return ""


def bearer_ok(request: Request, keys: list[str]) -> bool:
    token = presented_key(request)
    return bool(token) and any(hmac.compare_digest(token.encode(), k.encode()) for k in keys)


def csrf_token(request: Request) -> str:
    """The token a page sends back with its changes (bound to its session, or to 'open')."""
    session = request.cookies.get(COOKIE, "") or "open"
    return hmac.new(_SECRET, session.encode(), hashlib.sha256).hexdigest()[:32]


def cross_site(request: Request) -> bool:
    """A browser request that another site started (the standard headers say so)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc != request.headers.get("host", "")


def csrf_problem(request: Request, by_cookie: bool) -> str | None:
    """Why a state-changing request is refused, or None."""
    if request.method not in UNSAFE_METHODS:
        return None
    if cross_site(request):
        return "a page on another site may not change anything here"
    if by_cookie and not hmac.compare_digest(request.headers.get("x-freehold-csrf", ""), csrf_token(request)):
        return "the request did not come from this server's pages (missing or stale CSRF token); reload the page"
    return None


LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Log in · Freehold</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/static/app.css">
</head><body><main><form class="login" method="post" action="/login"><h1>Freehold</h1>
<p>This server asks for an API key (the one it was started with: <code>--api-key</code> or FREEHOLD_API_KEY).</p>
{error}<label>API key <input type="password" name="key" autofocus autocomplete="current-password"></label>
<input type="hidden" name="next" value="{next}"><button class="primary" type="submit">Log in</button></form></main>
</body></html>"""


@router.get("/login")
async def login_form(request: Request, target: str = Query("/", alias="next")) -> HTMLResponse:
    return HTMLResponse(LOGIN_PAGE.format(error="", next=html.escape(_safe_next(target))))


@router.post("/login")
async def login(request: Request) -> Response:
    keys = request.app.state.freehold.options.api_keys
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0]
    target = _safe_next((form.get("next") or ["/"])[0])
    if not keys or not any(hmac.compare_digest(key.encode(), k.encode()) for k in keys):
        page = LOGIN_PAGE.format(error='<p class="status bad">That is not one of this server\'s keys.</p>',
                                 next=html.escape(target))
        return HTMLResponse(page, status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, session_value(key), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _safe_next(target: str) -> str:
    """Only a path on this server (never another site) after logging in."""
    return target if target.startswith("/") and not target.startswith("//") else "/"
