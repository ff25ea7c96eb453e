"""textual-serve's server made safe to leave running: a token on every request, the page's own Origin on
the websocket, a cap on sessions, and each session's app started without a shell.

textual-serve (aiohttp) serves a page whose script opens a websocket; each websocket runs one app process
that speaks to the browser through textual's web driver. Whoever drives a session can start trainings,
delete runs and read what the app can read, so the only way in is the printed URL (docs/serve.md).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import re
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import WSCloseCode, WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

log = logging.getLogger("s2s-bench.serve")

MAX_SESSIONS = 3  # each session is an app process that may load a model (a few hundred MB)
STOP_TIMEOUT_S = 10.0  # a session's app that has not quit this long after its tab closed is killed
MAX_MESSAGE_BYTES = 1 << 20  # one websocket message from the browser (a paste arrives as one)
COLUMNS, ROWS = (10, 500), (5, 200)  # terminal sizes a browser may ask for: Textual allocates the screen

NO_TOKEN = "s2s-bench serve: open the URL that `s2s-bench serve` printed; it holds the access token.\n"
WRONG_TOKEN = "s2s-bench serve: wrong access token; open the URL that `s2s-bench serve` printed.\n"
FOREIGN_ORIGIN = "s2s-bench serve: a websocket from another site ({origin}) is refused.\n"
# textual-serve's page asks Google Fonts for Roboto Mono: an offline machine's browser logs an error for it.
# The page uses the copy textual-serve ships in its static folder instead.
REMOTE_FONT = re.compile(r"<link[^>]*fonts\.googleapis\.com[^>]*>", re.S)
LOCAL_FONT = (
    "<style>@font-face { font-family: 'Roboto Mono'; "
    "src: url('/static/fonts/RobotoMono-VariableFont_wght.ttf') format('truetype'); }</style>"
)
TOO_MANY = (
    "s2s-bench serve: {sessions} sessions are open, the most this server allows (serve --max-sessions); "
    "close one, then reload this page.\r\n"
)


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or `localhost`): only this machine can reach it."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


class AppProcess(AppService):
    """One browser tab's workbench: the app started directly, with arguments the server built (no shell)."""

    def __init__(self, argv: list[str], **kwargs: Any) -> None:
        super().__init__(shlex.join(argv), **kwargs)
        self.argv = argv

    async def _open_app_process(self, width: int = 80, height: int = 24) -> asyncio.subprocess.Process:
        self._process = process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._build_environment(width=width, height=height),
        )
        self._stdin = process.stdin
        return process

    async def stop(self) -> None:
        """Ask the app to quit; kill it if it has not within STOP_TIMEOUT_S (trainers run on regardless)."""
        try:
            await asyncio.wait_for(super().stop(), STOP_TIMEOUT_S)
        except asyncio.TimeoutError:
            if self._process is not None and self._process.returncode is None:
                self._process.kill()
        if self._process is not None:
            await self._process.wait()  # reaped, and its pipes closed while the event loop runs


class WorkbenchServer(Server):
    """Serves `s2s-bench` on a runs folder to browsers that hold the token, at most `max_sessions` at once."""

    def __init__(
        self,
        runs_dir: Path,
        host: str = "127.0.0.1",
        port: int = 8000,
        max_sessions: int = MAX_SESSIONS,
        precision: str | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__("s2s-bench", host=host, port=port, title="s2s-bench")
        self.app_argv = [sys.executable, "-m", "workbench", "--runs-dir", str(Path(runs_dir).resolve())]
        if precision is not None:
            self.app_argv += ["--precision", precision]
        self.token = token or secrets.token_urlsafe(32)
        self.max_sessions = max_sessions
        self.sessions = 0
        self.apps: set[AppProcess] = set()  # the sessions' running apps
        self._endings: set[asyncio.Future] = set()  # sessions being ended
        self.cookie = f"s2s-bench-token-{port}"  # cookies ignore ports: one name per server

    @property
    def url(self) -> str:
        """The URL to open: the page, with the access token."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={self.token}"

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._require_token)
        return app

    def initialize_logging(self) -> None:
        """Errors only, and no local variables in tracebacks: the token is one, and the access log
        would print every URL (the first one holds the token)."""
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")

    @web.middleware
    async def _require_token(self, request: web.Request, handler) -> web.StreamResponse:
        """Every request shows the token: in the URL (the printed one), or in the cookie the page set."""
        given = request.query.get("token") or request.cookies.get(self.cookie)
        if not given:
            raise web.HTTPUnauthorized(text=NO_TOKEN)
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise web.HTTPForbidden(text=WRONG_TOKEN)
        response = await handler(request)
        if request.path == "/" and not response.prepared:
            # The page's script, fonts and websocket then carry it; Strict: never sent from another site.
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
        return response

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints its logo and a URL without the token; the command prints the URL instead."""

    async def on_shutdown(self, app: web.Application) -> None:
        """Stopping the server quits every session's app (their trainers run on)."""
        await asyncio.gather(*(session.stop() for session in list(self.apps)), return_exceptions=True)
        await asyncio.gather(*list(self._endings), return_exceptions=True)

    async def handle_index(self, request: web.Request) -> web.Response:
        """The page, its websocket at the address the browser used (behind `ssh -L` too)."""
        if self.sessions >= self.max_sessions:
            raise web.HTTPServiceUnavailable(text=TOO_MANY.format(sessions=self.sessions))
        scheme = "wss" if request.secure else "ws"
        context = {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{scheme}://{request.host}/ws",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": self.title},
        }
        response = aiohttp_jinja2.render_template("app_index.html", request, context)
        response.text = REMOTE_FONT.sub(LOCAL_FONT, response.text)
        return response

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One session: the page's own Origin only, refused past the cap with a message on its screen."""
        origin = request.headers.get("Origin", "")
        if origin != f"{request.scheme}://{request.host}":
            raise web.HTTPForbidden(text=FOREIGN_ORIGIN.format(origin=origin or "no Origin"))
        websocket = web.WebSocketResponse(heartbeat=15, max_msg_size=MAX_MESSAGE_BYTES)
        if self.sessions >= self.max_sessions:
            await websocket.prepare(request)
            await websocket.send_bytes(TOO_MANY.format(sessions=self.sessions).encode())
            await websocket.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too many sessions")
            return websocket
        self.sessions += 1  # no await since the check: two connections cannot both take the last place
        width = _clamp(to_int(request.query.get("width", "80"), 80), COLUMNS)
        height = _clamp(to_int(request.query.get("height", "24"), 24), ROWS)
        app: AppProcess | None = None
        try:
            await websocket.prepare(request)
            app = AppProcess(
                self.app_argv,
                write_bytes=websocket.send_bytes,
                write_str=websocket.send_str,
                close=websocket.close,
                download_manager=self.download_manager,
            )
            self.apps.add(app)
            await app.start(width, height)
            await self._process_messages(websocket, app)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as error:  # one session's failure is logged; the server goes on
            log.exception(error)
        finally:
            # aiohttp cancels this handler when the browser goes away: ending the session outlives it.
            ending = asyncio.ensure_future(self._end_session(app))
            self._endings.add(ending)
            ending.add_done_callback(self._endings.discard)
            await asyncio.shield(ending)
        return websocket

    async def _end_session(self, app: AppProcess | None) -> None:
        """Quit the session's app (killed if it will not) and free its place."""
        try:
            if app is not None:
                await app.stop()
        finally:
            self.apps.discard(app)
            self.sessions -= 1

    async def _process_messages(self, websocket: web.WebSocketResponse, app_service: AppService) -> None:
        """The browser's keys, pastes and resizes to the app (sizes held to COLUMNS x ROWS)."""
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = message.json()
            except ValueError:
                continue  # not an envelope the page sends
            if not isinstance(envelope, list) or not envelope:
                continue
            kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
            if kind == "stdin" and isinstance(data, str):
                await app_service.send_bytes(data.encode("utf-8"))
            elif kind == "resize" and isinstance(data, dict):
                width = _clamp(to_int(str(data.get("width", 80)), 80), COLUMNS)
                height = _clamp(to_int(str(data.get("height", 24)), 24), ROWS)
                await app_service.set_terminal_size(width, height)
            elif kind == "ping":
                await websocket.send_json(["pong", data])
            elif kind == "blur":
                await app_service.blur()
            elif kind == "focus":
                await app_service.focus()


def _clamp(value: int, bounds: tuple[int, int]) -> int:
    return min(max(value, bounds[0]), bounds[1])
