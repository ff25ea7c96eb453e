"""`s2s-bench serve`: nothing without the token, no websocket from another site, a cap on sessions, and
each session's workbench started without a shell. A real server on 127.0.0.1 and real app processes."""

import asyncio
import re
import socket
import subprocess
import sys

import aiohttp
import psutil
import pytest
from aiohttp.test_utils import TestServer

from workbench.serve.server import WorkbenchServer, is_loopback


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(runs_dir, scenario, **options) -> None:
    """Run `scenario(server, base_url, session)` against a WorkbenchServer listening on 127.0.0.1."""
    port = free_port()
    server = WorkbenchServer(runs_dir, "127.0.0.1", port, **options)

    async def main():
        test_server = TestServer(await server._make_app(), host="127.0.0.1", port=port)
        await test_server.start_server()
        try:
            # unsafe: keep cookies from an IP address, as a browser does
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                await scenario(server, f"http://127.0.0.1:{port}", session)
        finally:
            await test_server.close()

    asyncio.run(main())


async def first_screen(websocket, timeout: float = 60) -> bytes:
    """What the session's app draws until the runs screen's key bar shows (it starts a Python process)."""
    drawn = b""
    while b"Quit" not in drawn:
        message = await websocket.receive(timeout=timeout)
        assert message.type == aiohttp.WSMsgType.BINARY, message
        drawn += message.data
    return drawn


def test_every_page_and_file_needs_the_token(tmp_path):
    async def scenario(server, base, session):
        for path in ("/", "/static/js/textual.js", "/ws", "/download/x"):
            async with session.get(base + path) as response:
                assert response.status == 401, path
                assert "open the URL that `s2s-bench serve` printed" in await response.text()
            async with session.get(f"{base}{path}?token=not-{server.token}") as response:
                assert response.status == 403, path
        async with session.get(f"{base}/", cookies={server.cookie: "wrong"}) as response:
            assert response.status == 403
        async with session.get(f"{base}/?token={server.token}") as response:
            assert response.status == 200
            page = await response.text()
            assert f'data-session-websocket-url="ws://127.0.0.1:{server.port}/ws"' in page
            assert response.cookies[server.cookie].value == server.token
            assert response.cookies[server.cookie]["httponly"] and response.cookies[server.cookie]["samesite"]
        # The page's files and websocket then carry the cookie the page set.
        async with session.get(f"{base}/static/js/textual.js") as response:
            assert response.status == 200

    serve(tmp_path / "runs", scenario)


def test_the_page_asks_no_other_site_for_its_font(tmp_path):
    async def scenario(server, base, session):
        async with session.get(f"{base}/?token={server.token}") as response:
            page = await response.text()
        assert "googleapis" not in page and "https://" not in page.split("<body")[0]
        (font,) = re.findall(r"url\('(/static/fonts/[^']+\.ttf)'\)", page)
        async with session.get(base + font) as response:
            assert response.status == 200 and len(await response.read()) > 10_000

    serve(tmp_path / "runs", scenario)


def test_a_websocket_from_another_origin_or_none_is_refused_even_with_the_token(tmp_path):
    async def scenario(server, base, session):
        url = f"{base}/ws?token={server.token}"
        for origin in (
            "http://evil.example",
            f"http://localhost:{server.port}",
            f"https://127.0.0.1:{server.port}",
        ):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url, origin=origin)
            assert refused.value.status == 403, origin
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url, headers={"Origin": ""})
        assert refused.value.status == 403
        assert server.sessions == 0

    serve(tmp_path / "runs", scenario)


def test_a_session_past_the_cap_is_refused_with_a_message_and_the_app_runs_without_a_shell(tmp_path):
    # A runs folder whose name a shell would act on: the app gets it as one argument, never a command line.
    runs_dir = tmp_path / "runs; touch pwned $(touch pwned-too)"
    marker = tmp_path / "pwned"

    async def scenario(server, base, session):
        url, origin = f"{base}/ws?token={server.token}&width=100&height=30", base
        first = await session.ws_connect(url, origin=origin)
        drawn = await first_screen(first)
        assert b"Runs" in drawn and server.sessions == 1
        (app,) = [p for p in psutil.Process().children() if p.name() != "sh"]
        assert app.cmdline() == [sys.executable, "-m", "workbench", "--runs-dir", str(runs_dir.resolve())]
        assert not any(p.name() in ("sh", "bash", "dash") for p in psutil.Process().children(recursive=True))

        second = await session.ws_connect(url, origin=origin)
        message = await second.receive()
        assert message.type == aiohttp.WSMsgType.BINARY
        assert b"1 sessions are open, the most this server allows" in message.data
        closed = await second.receive()
        assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == aiohttp.WSCloseCode.TRY_AGAIN_LATER
        async with session.get(f"{base}/?token={server.token}") as response:
            assert response.status == 503 and "the most this server allows" in await response.text()

        await first.close()  # the tab closes: its app quits, and its place is free again
        for _ in range(300):
            if not server.sessions:
                break
            await asyncio.sleep(0.1)
        assert server.sessions == 0
        assert not app.is_running() or app.status() == psutil.STATUS_ZOMBIE
        async with session.get(f"{base}/?token={server.token}") as response:
            assert response.status == 200

    serve(runs_dir, scenario, max_sessions=1)
    assert not marker.exists() and not (tmp_path / "pwned-too").exists()
    assert not any(p.name() == "pwned" for p in tmp_path.iterdir())


def test_only_loopback_addresses_count_as_loopback():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.5", "gpu-box", "10.0.0.1"))


def test_serving_beyond_loopback_warns_and_a_port_it_cannot_take_is_one_clear_line(tmp_path):
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: the warning comes, then the bind fails cleanly.
    command = [sys.executable, "-m", "workbench", "serve", "--runs-dir", str(tmp_path), "--port"]
    out = subprocess.run(
        [*command, str(free_port()), "--host", "192.0.2.1"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2, out.stderr
    assert "warning:" in out.stderr and "not a loopback address" in out.stderr
    assert "error: cannot listen on 192.0.2.1:" in out.stderr and "Traceback" not in out.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([*command, str(port)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and f"error: cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "warning" not in out.stderr and "Traceback" not in out.stderr
    assert f"http://127.0.0.1:{port}/?token=" in out.stdout
