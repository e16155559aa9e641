"""The monitor's web server (Starlette on uvicorn): the page, its static files, the JSON
API and the push channel (server-sent events).

Read-only by construction: every route is GET (or HEAD); nothing on the page or in the
API changes the sources or anything upstream. With a token, every request must carry
it: ``Authorization: Bearer TOKEN``, ``?token=TOKEN`` (the page's address; the server
then sets it as a cookie for the page's own requests) or that cookie.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import os
from typing import Any, AsyncIterator, Optional

import numpy as np

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .state import MonitorState

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
COOKIE = "ams02_monitor_token"
#: The page may load its own files only: no CDN, no inline script, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'none'"
)


def _clean(x: Any) -> Any:
    """NaN and infinities as null (JSON has neither)."""
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def dumps(obj: Any) -> str:
    return json.dumps(_clean(obj), separators=(",", ":"), allow_nan=False)


class Guard:
    """ASGI middleware: GET/HEAD only, the token when one is set, safe headers."""

    def __init__(self, app: ASGIApp, token: Optional[str]) -> None:
        self.app = app
        self.token = token

    def _authorised(self, scope: Scope) -> Optional[bool]:
        """True (token good), False (no token needed), None (refused)."""
        if not self.token:
            return False
        req = Request(scope)
        given = []
        auth = req.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given.append(auth[7:].strip())
        if "token" in req.query_params:
            given.append(req.query_params["token"])
        if COOKIE in req.cookies:
            given.append(req.cookies[COOKIE])
        for g in given:
            if hmac.compare_digest(g.encode(), self.token.encode()):
                return True
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await PlainTextResponse(
                "read-only: only GET and HEAD", status_code=405, headers={"Allow": "GET, HEAD"}
            )(scope, receive, send)
            return
        ok = self._authorised(scope)
        if ok is None:
            await PlainTextResponse(
                "a valid token is required (?token=..., or Authorization: Bearer ...)", status_code=401
            )(scope, receive, send)
            return
        set_cookie = ok and Request(scope).query_params.get("token") is not None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                ]
                if set_cookie and self.token:
                    headers.append(
                        (b"set-cookie", f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode())
                    )
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(state: MonitorState, *, token: Optional[str] = None, interval_s: float = 0.5) -> Starlette:
    """The Starlette app serving ``state``."""

    async def index(request: Request) -> Response:
        return FileResponse(os.path.join(STATIC_DIR, "index.html"), headers={"Cache-Control": "no-store"})

    async def api_state(request: Request) -> Response:
        snap = await asyncio.to_thread(state.snapshot)
        return Response(dumps(snap), media_type="application/json", headers={"Cache-Control": "no-store"})

    async def api_alarms(request: Request) -> Response:
        try:
            since = int(request.query_params.get("since", "0"))
        except ValueError:
            return JSONResponse({"error": "since must be an alarm id (an integer)"}, status_code=400)
        alarms = state.alarm_log(since)
        return Response(
            dumps({"count": state.alarms.count, "alarms": alarms}),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def api_health(request: Request) -> Response:
        snap = state.snapshot()
        link = snap["link"]
        body = {
            "status": "stalled" if link["stalled"] else "ok",
            "uptime_s": snap["uptime_s"],
            "packets": link["packets"],
            "time_since_last_packet_s": link["time_since_last_packet_s"],
            "sources": [{"name": s["name"], "status": s.get("status")} for s in snap["sources"]],
        }
        return Response(dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"})

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            # A (re)connecting browser gets the whole current state at once.
            yield "retry: 1000\n\n"
            while True:
                snap = await asyncio.to_thread(state.snapshot)
                yield f"event: state\ndata: {dumps(snap)}\n\n"
                for _ in range(max(1, int(interval_s / 0.05))):
                    if await request.is_disconnected():
                        return
                    await asyncio.sleep(0.05)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    routes = [
        Route("/", index),
        Route("/api/state", api_state),
        Route("/api/alarms", api_alarms),
        Route("/api/health", api_health),
        Route("/api/events", events),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Guard, token=token)])
