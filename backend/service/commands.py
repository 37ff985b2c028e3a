"""``image-dynamics serve``: run the backend service (FastAPI on uvicorn) until Ctrl+C / SIGTERM."""
from __future__ import annotations

import errno
import logging
import os
import socket
import sys

from addon.core.protocol import is_loopback

from .config import MiB, ServiceConfig

log = logging.getLogger(__name__)

TOKEN_ENV = "IMAGE_DYNAMICS_TOKEN"


def add_commands(sub) -> None:
    s = sub.add_parser("serve", help="run the local backend service the Blender add-on talks to",
                       description="Serve the /v1 HTTP API (health, models, jobs) on this computer. The add-on "
                                   "can start it for you (preferences: Start Backend Automatically) or you run "
                                   "it by hand, here or on a machine with a GPU (see docs/service.md).")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1 = this computer only; 0.0.0.0 = every "
                        "network: use --token and a trusted network)")
    s.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free port, printed)")
    s.add_argument("--device", default="auto", help="where models run: auto (CUDA when present), cpu, cuda")
    s.add_argument("--model", help="motion checkpoint to load, or 'tiny' for a random tiny test model (default: "
                                   "the shipped checkpoint when present)")
    s.add_argument("--cache-dir", help="results cache folder (default ~/.cache/image-dynamics/service)")
    s.add_argument("--cache-mb", type=int, default=2048, help="results cache size limit in MiB (default 2048)")
    s.add_argument("--max-upload-mb", type=float, default=32, help="largest request body in MiB (default 32)")
    s.add_argument("--max-pixels", type=int, default=50_000_000,
                   help="largest image in pixels, width x height (default 50,000,000)")
    s.add_argument("--max-queue", type=int, default=8, help="jobs allowed to wait; more get 429 (default 8)")
    s.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                   help=f"require 'Authorization: Bearer TOKEN' (default: ${TOKEN_ENV} when set)")
    s.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="browser origin allowed to call the API (repeatable; default none)")
    s.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="extra Host header name accepted while listening on loopback (repeatable)")
    s.set_defaults(func=_cmd_serve)


def _bind(host: str, port: int) -> socket.socket:
    from backend.cli import UserError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} on {host} is already in use (is a backend already running? check "
                            f"http://{host}:{port}/v1/health) - choose another with --port") from None
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock  # bound (the port is ours) but not listening: clients are refused until the model is loaded


def _cmd_serve(args) -> int:
    import uvicorn

    from backend.cli import UserError

    from .app import create_app

    try:
        config = ServiceConfig(host=args.host, port=args.port, device=args.device, model=args.model,
                               cache_dir=args.cache_dir, cache_max_bytes=int(args.cache_mb * MiB),
                               max_upload_bytes=int(args.max_upload_mb * MiB), max_pixels=args.max_pixels,
                               max_queue=args.max_queue, token=args.token or None,
                               allowed_origins=tuple(args.allow_origin), allowed_hosts=tuple(args.allow_host))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not is_loopback(config.host) and not config.token:
        print(f"warning: listening on {config.host} without --token: anyone on the network can use this backend",
              file=sys.stderr)
    sock = _bind(config.host, config.port)
    try:
        try:
            app = create_app(config)
        except (ValueError, FileNotFoundError) as exc:
            raise UserError(f"cannot load the model: {exc}") from None
        sock.listen(128)
        port = sock.getsockname()[1]
        host = f"[{config.host}]" if ":" in config.host else config.host
        health = app.state.service.models.list()
        model = health[1] or "none (load one with POST /v1/models)"
        print(f"Image Dynamics backend listening on http://{host}:{port} (API /v1, model {model}); Ctrl+C stops it",
              flush=True)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5))
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
