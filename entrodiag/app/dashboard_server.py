"""The server ``entrodiag dashboard`` runs: the app (``streamlit_app.py``) as a Streamlit ``st.App``
behind ``LocalOnly``, a check of the Host and Origin headers of every request.

Why: the dashboard binds 127.0.0.1, but a web page can still reach it through DNS rebinding (its
own name made to resolve to 127.0.0.1; the browser then takes the dashboard for that page's own
origin, sends ``Host: evil.example:PORT`` and ``Origin: http://evil.example:PORT``, and Streamlit
accepts a WebSocket whose Origin matches its Host). Streamlit's ``server.allowedHosts`` (which the
launcher sets to the bound address's names) covers the WebSocket only; ``LocalOnly`` applies the
same list to every HTTP request too, and lets a WebSocket in only from the page the dashboard
served (an ``Origin`` equal to the request's own, allowed, host), so a page on another origin,
another local port included, cannot drive it. Refused: HTTP 403 (the WebSocket's handshake too).

Before it serves, the server prepares itself (its lifespan): the warm-up (``app_warmup``) imports
what the pages import and computes the first page's numbers, for at most ``app_warmup.SERVE_AFTER_S``
seconds; a warm-up that takes longer (a root of many runs) goes on in the background, and the first
script run waits for it.

``streamlit run app/streamlit_app.py`` from a checkout runs the app without this guard or the warm-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import streamlit as st
from starlette.middleware import Middleware
from streamlit.web.server.server_util import is_allowed_origin
from streamlit.web.server.starlette.starlette_websocket import is_host_allowed

from entrodiag.app import app_warmup

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]


class LocalOnly:
    """ASGI middleware: requests whose Host is not in ``server.allowedHosts`` and WebSockets whose
    Origin is neither the request's own host nor in ``server.corsAllowedOrigins`` get a 403."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] in ("http", "websocket") and not allowed(scope):
            if scope["type"] == "websocket":  # closed before it is accepted: the handshake gets a 403
                await send({"type": "websocket.close", "code": 1008})
                return
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            await send({"type": "http.response.body",
                        "body": b"entrodiag dashboard: this Host or Origin is not the dashboard's address\n"})
            return
        await self.app(scope, receive, send)


def allowed(scope: Scope) -> bool:
    """Whether the request's Host (and, for a WebSocket, its Origin) may reach the app."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    host = headers.get("host")
    if not is_host_allowed(host):  # Streamlit's parser; an empty list would allow any Host
        return False
    origin = headers.get("origin")
    if scope["type"] != "websocket" or origin is None:  # a client that is not a web page
        return True
    return urlsplit(origin).netloc.lower() == (host or "").lower() or is_allowed_origin(origin)


@asynccontextmanager
async def warm_up(_app: Any) -> AsyncIterator[None]:
    """The server's lifespan: once Streamlit's runtime runs (its caches are the ones the pages read),
    start the warm-up and serve when it is over or after ``app_warmup.SERVE_AFTER_S`` seconds."""
    app_warmup.start()
    await asyncio.to_thread(app_warmup.STATE.done.wait, app_warmup.SERVE_AFTER_S)
    yield


app = st.App("streamlit_app.py", middleware=[Middleware(LocalOnly)], lifespan=warm_up)
