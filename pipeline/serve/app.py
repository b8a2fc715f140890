"""The ASGI app (Starlette): JSON API, the page, files from --out, and one WebSocket per page for live frames
and render progress. Every request goes through pipeline.serve.requests (the library's validation); a bad one
gets {"error": "..."} with a 4xx status."""
from __future__ import annotations

import asyncio
import base64
import io
import ipaddress
import json
import secrets
import struct
import subprocess
import threading
from contextlib import asynccontextmanager, contextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from pipeline.atomic import atomic_path
from pipeline.errors import UserError
from pipeline.serve import requests as rq
from pipeline.serve.jobs import Busy, RenderJobs
from pipeline.serve.workspace import NotFound, Workspace

STATIC = Path(__file__).resolve().parent / "static"
TOKEN_COOKIE = "cppn_token"
# Binary frames on the WebSocket: a 12-byte little-endian header, then count*height*width gray bytes.
FRAME_HEADER = struct.Struct("<IHHHBx")  # request id, width, height, count, kind
KIND_PREVIEW, KIND_WALK = 0, 1
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_local(host: str) -> bool:
    """Whether binding to `host` keeps the app on this machine (loopback only)."""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_hex(24)


class Hub:
    """The open pages' outboxes: render progress from the worker thread reaches every page."""

    def __init__(self):
        self._lock = threading.Lock()
        self._boxes: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()

    def add(self, box) -> None:
        with self._lock:
            self._boxes.add(box)

    def discard(self, box) -> None:
        with self._lock:
            self._boxes.discard(box)

    def broadcast(self, message: dict) -> None:
        with self._lock:
            boxes = list(self._boxes)
        for loop, queue in boxes:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, message)
            except RuntimeError:  # that page's loop is closed: it is going away
                pass


def error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class TokenGate:
    """Every HTTP request and WebSocket must carry the token: `?token=` (as Jupyter prints it), the cookie that
    the first such request sets, or `Authorization: token ...`. Without one: 403 (WebSocket: closed, 1008)."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token

    def _given(self, scope) -> tuple[str | None, bool]:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
        if query is not None:
            return query, True
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        auth = headers.get("authorization", "")
        if auth.lower().startswith("token "):
            return auth[6:].strip(), False
        morsel = SimpleCookie(headers.get("cookie", "")).get(TOKEN_COOKIE)
        return (morsel.value if morsel else None), False

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        given, in_query = self._given(scope)
        if given is None or not secrets.compare_digest(given.encode(), self.token.encode()):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            why = "no token" if given is None else "a wrong token"
            return await error(f"this server needs its token and the request has {why}; open the URL with "
                               f"?token=... that `cppn-video serve` printed", 403)(scope, receive, send)
        if not in_query or scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"set-cookie", cookie.encode("latin-1"))]}
            await send(message)

        return await self.app(scope, receive, send_with_cookie)


class HostGate:
    """Only requests whose Host header names one of `hosts` (any port): a loopback server is then out of reach
    of DNS rebinding, where another site's name resolves to 127.0.0.1."""

    def __init__(self, app, hosts: tuple[str, ...]):
        self.app, self.hosts = app, {h.lower() for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1").lower()
            name = host[:host.index("]") + 1] if host.startswith("[") and "]" in host else host.split(":")[0]
            if name not in self.hosts:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                return await error(f"host {host!r} is not this server's; open it as http://127.0.0.1:PORT/",
                                   400)(scope, receive, send)
        return await self.app(scope, receive, send)


_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def foreign_origin(headers: dict) -> str | None:
    """The other site a browser says a request comes from, or None when it is this page's own (or no browser's).

    headers: lower-case byte names -> byte values, as in an ASGI scope. A browser names the page's origin in
    Origin on every cross-site POST (a sandboxed frame's is "null") and on WebSockets; Sec-Fetch-Site says
    "cross-site" or "same-site" even where an old browser leaves Origin out. Clients that send neither (curl,
    scripts) are no other site's page."""
    host = headers.get(b"host", b"").decode("latin-1")
    origin = headers.get(b"origin")
    if origin is not None:
        text = origin.decode("latin-1")
        return None if urlsplit(text).netloc == host and host else text
    site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
    return site if site in ("cross-site", "same-site") else None


class OriginGate:
    """Every state-changing request (any method but GET, HEAD and OPTIONS, whatever its body or Content-Type)
    and every WebSocket must come from this server's own page: a page on another site cannot start, cancel or
    convert renders even on a loopback server it can reach (a text/plain POST needs no CORS preflight)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" or (scope["type"] == "http" and scope.get("method") not in _SAFE_METHODS):
            other = foreign_origin(dict(scope.get("headers", [])))
            if other is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                return await error(f"requests from another site ({other}) may not change this server's state; "
                                   f"use the page this server serves", 403)(scope, receive, send)
        return await self.app(scope, receive, send)


async def _body(request: Request) -> dict:
    # Only application/json: a page on another site can POST text/plain without asking (no CORS preflight),
    # but not JSON, so this keeps other sites from starting renders on a local server.
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise UserError("send the request body as JSON with Content-Type: application/json")
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise UserError("the request body is not valid JSON; send a JSON object") from None
    except RecursionError:  # arrays nested thousands deep (no request is)
        raise UserError("the request body is nested too deep; send a flat JSON object") from None
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object")
    return body


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def frame_message(request_id: int, kind: int, frames: np.ndarray) -> bytes:
    """frames uint8 [N, H, W] -> one binary WebSocket message (FRAME_HEADER, then the pixels row by row)."""
    n, h, w = frames.shape
    return FRAME_HEADER.pack(request_id, w, h, n, kind) + np.ascontiguousarray(frames).tobytes()


def webm_of(ws: Workspace, name: str) -> str:
    """A VP9 WebM copy of a finished MP4 in --out (for browsers without H.264); returns its name."""
    from pipeline.video import ffmpeg_exe

    if not isinstance(name, str) or not name.endswith(".mp4"):
        raise UserError(f"name {name!r}: give the .mp4 of a finished render")
    src = ws.output_file(name)
    dst = src.with_name(src.name[:-4] + ".webm")
    if dst.is_file():
        return dst.name
    with atomic_path(dst) as tmp:
        done = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-an",
                               "-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "33", "-deadline", "realtime",
                               "-f", "webm", str(tmp)], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise UserError(f"ffmpeg could not make a WebM of {name}: {done.stderr.strip()[-300:]}")
    return dst.name


def palettes_for_the_page() -> dict:
    """The suggested palettes' lookup tables ([256][3] each), so the page colours its previews as a render will."""
    from pipeline.scene.palette import SUGGESTED, palette

    return {name: palette(name).lut.tolist() for name in SUGGESTED if name != "gray"}


def create_app(ckpts=(), out="serve-out", token: str | None = None, trusted_hosts=None,
               workspace: Workspace | None = None) -> Starlette:
    """The web app over a Workspace of `ckpts` (names or paths) writing only into `out`.

    token: required on every request when set (give one whenever the server is reachable from other machines);
    trusted_hosts: Host header values accepted (a loopback server passes its own names, so a page on another
    site cannot reach it through DNS rebinding); None accepts any.
    """
    ws = workspace or Workspace(ckpts, out)
    hub = Hub()
    jobs = RenderJobs(ws, on_event=lambda job: hub.broadcast({"type": "job", "job": job}))

    async def index(request: Request):
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def state(request: Request):
        return JSONResponse({"checkpoints": ws.listing(), "default": ws.default_id, "job": jobs.status(),
                             "limits": {"preview": rq.PREVIEW_MAX, "walk_preview": rq.WALK_PREVIEW_MAX,
                                        "thumb": rq.THUMB_MAX},
                             "palettes": palettes_for_the_page(),
                             "out": str(ws.out)})

    async def checkpoint(request: Request):
        return JSONResponse(await run_in_threadpool(ws.checkpoint_info, request.path_params["ckpt"]))

    async def thumbs(request: Request):
        t = rq.thumbs(ws, await _body(request))
        z = ws.seed_latents(t.ckpt, t.seeds)
        frames = await run_in_threadpool(ws.render, t.ckpt, z, t.size, t.invert)
        return JSONResponse({"ckpt": t.ckpt, "size": t.size, "thumbs": [
            {"seed": s, "z": [float(v) for v in z[i]],
             "png": "data:image/png;base64," + base64.b64encode(_png(frames[i])).decode("ascii")}
            for i, s in enumerate(t.seeds)]})

    async def render(request: Request):
        req = await run_in_threadpool(rq.render, ws, await _body(request))
        return JSONResponse(jobs.submit(req), status_code=202)

    async def job(request: Request):
        return JSONResponse(jobs.status())

    async def audio(request: Request):
        # raw bytes, typed as audio or octet-stream: neither is a type another site may POST without a CORS
        # preflight, so no page elsewhere can upload here
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not (kind.startswith("audio/") or kind in ("application/octet-stream", "video/mp4")):
            raise UserError("send the track's bytes with Content-Type audio/... or application/octet-stream")
        from pipeline.serve.audio import describe, store_track

        data = await request.body()
        path = await run_in_threadpool(store_track, ws.out, data, request.query_params.get("name"))
        return JSONResponse(await run_in_threadpool(describe, path))

    async def project(request: Request):
        # a drawing or a picture, as JSON {"png": data URL, ckpt, size, invert} or raw bytes typed image/... or
        # octet-stream (?ckpt=&size=&invert=): none is a type another site may POST without a CORS preflight
        from pipeline.serve.project import project_upload, upload_bytes

        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            body = await _body(request)
            if rq.field(body, "warm", bool, False):  # a pen touched the canvas: set the fit up meanwhile
                from pipeline.serve.project import warm_up

                ckpt = rq.field(body, "ckpt", str, ws.default_id)
                ws.choice(ckpt)
                return JSONResponse(await run_in_threadpool(warm_up, ws, ckpt))
            data = upload_bytes(data_url=rq.field(body, "png", str))
        elif kind.startswith("image/") or kind == "application/octet-stream":
            body = {k: v for k, v in request.query_params.items()}
            for key in ("size",):
                if key in body:
                    try:
                        body[key] = int(body[key])
                    except ValueError:
                        raise UserError(f"{key} must be a whole number, got {body[key]!r}", key=key) from None
            body["invert"] = body.get("invert") in ("1", "true")
            data = upload_bytes(raw=await request.body())
        else:
            raise UserError("send the picture as JSON {\"png\": data URL} or its bytes typed image/png")
        ckpt = rq.field(body, "ckpt", str, ws.default_id)
        ws.choice(ckpt)
        size = rq.size(body, "size", 128, rq.PREVIEW_MAX)
        return JSONResponse(await run_in_threadpool(project_upload, ws, ckpt, data, size,
                                                    rq.field(body, "invert", bool, False),
                                                    rq.field(body, "name", str, "the drawing")))

    async def cancel(request: Request):
        return JSONResponse(await run_in_threadpool(jobs.cancel))

    async def webm(request: Request):
        body = await _body(request)
        return JSONResponse({"webm": await run_in_threadpool(webm_of, ws, body.get("name"))})

    async def files(request: Request):
        path = ws.output_file(request.path_params["name"])
        disposition = "attachment" if request.query_params.get("download") else "inline"
        return FileResponse(path, filename=path.name, content_disposition_type=disposition)

    async def socket(websocket: WebSocket):
        if foreign_origin(dict(websocket.scope.get("headers", []))) is not None:
            # WebSockets are exempt from CORS: a page on another site could otherwise drive this one (OriginGate
            # closes them first; this stays for an app mounted without it)
            await websocket.close(code=1008)
            return
        await websocket.accept()
        loop = asyncio.get_running_loop()
        box = (loop, asyncio.Queue())
        hub.add(box)
        pending: dict[str, object] = {}
        wake = asyncio.Event()

        async def sender():
            while True:
                item = await box[1].get()
                if isinstance(item, bytes):
                    await websocket.send_bytes(item)
                else:
                    await websocket.send_text(json.dumps(item))

        def draw(req):
            if isinstance(req, rq.Preview):
                return frame_message(req.id, KIND_PREVIEW, ws.render(req.ckpt, req.z, req.size, req.invert,
                                                                     camera=req.camera))
            return frame_message(req.id, KIND_WALK, ws.render(req.ckpt, req.latents, req.size, req.invert,
                                                              camera=req.camera))

        async def worker():
            # Only the newest request of each kind renders: a drag sends faster than frames render, and a
            # frame for a position the slider has already left is wasted work.
            while True:
                await wake.wait()
                wake.clear()
                for kind in ("preview", "walk"):
                    req = pending.pop(kind, None)
                    if req is None:
                        continue
                    try:
                        box[1].put_nowait(await run_in_threadpool(draw, req))
                    except UserError as e:
                        box[1].put_nowait({"type": "error", "id": req.id, "error": str(e)})

        tasks = [asyncio.create_task(sender()), asyncio.create_task(worker())]
        box[1].put_nowait({"type": "job", "job": jobs.status()})
        try:
            while True:
                text = await websocket.receive_text()
                msg_id = None
                try:
                    try:
                        msg = json.loads(text)
                    except (ValueError, RecursionError):
                        raise UserError("messages must be JSON objects") from None
                    if not isinstance(msg, dict):
                        raise UserError("messages must be JSON objects")
                    msg_id = msg.get("id")
                    kind = msg.get("type")
                    if kind == "preview":
                        pending["preview"] = await run_in_threadpool(rq.preview, ws, msg)
                    elif kind == "walk":
                        pending["walk"] = await run_in_threadpool(rq.walk_preview, ws, msg)
                    else:
                        raise UserError(f"unknown message type {kind!r}; send preview or walk")
                    wake.set()
                except UserError as e:
                    box[1].put_nowait({"type": "error", "id": msg_id, "error": str(e)})
        except WebSocketDisconnect:
            pass
        finally:
            hub.discard(box)
            for t in tasks:
                t.cancel()

    async def user_error(request, exc: UserError):
        return error(str(exc), 409 if isinstance(exc, Busy) else 404 if isinstance(exc, NotFound) else 400)

    async def http_error(request, exc: HTTPException):
        return error(exc.detail if isinstance(exc.detail, str) else "request failed", exc.status_code)

    routes = [
        Route("/", index),
        Route("/api/state", state),
        Route("/api/checkpoint/{ckpt}", checkpoint),
        Route("/api/thumbs", thumbs, methods=["POST"]),
        Route("/api/render", render, methods=["POST"]),
        Route("/api/job", job),
        Route("/api/audio", audio, methods=["POST"]),
        Route("/api/project", project, methods=["POST"]),
        Route("/api/job/cancel", cancel, methods=["POST"]),
        Route("/api/webm", webm, methods=["POST"]),
        Route("/files/{name}", files),
        WebSocketRoute("/ws", socket),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    @asynccontextmanager
    async def lifespan(app):
        yield
        await run_in_threadpool(jobs.shutdown)  # Ctrl-C mid-render: cancel it, so nothing partial stays

    app = Starlette(routes=routes, exception_handlers={UserError: user_error, HTTPException: http_error},
                    lifespan=lifespan)
    app.state.workspace, app.state.jobs = ws, jobs
    app.add_middleware(OriginGate)
    if trusted_hosts is not None:
        app.add_middleware(HostGate, hosts=tuple(trusted_hosts))
    if token is not None:
        app.add_middleware(TokenGate, token=token)
    return app


def run(app, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until Ctrl-C (uvicorn)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", ws_max_size=64 << 20)


@contextmanager
def background_server(app, host: str = "127.0.0.1"):
    """Serve `app` with uvicorn on a free port in a thread (for the browser test and the benchmark); yields its
    base URL and stops the server on exit."""
    import time

    import uvicorn

    config = uvicorn.Config(app, host=host, port=0, log_level="warning", ws_max_size=64 << 20)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the web server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
