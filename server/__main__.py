"""`python -m server` / `deep-image-analogy-engine`: start the local engine (see API.md)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path

import uvicorn

from . import __version__, runtime_file
from .config import KEEP_ALIVE_SECONDS, ServerConfig, default_max_body, test_hooks_enabled
from .watchdog import Watchdog, pid_alive

log = logging.getLogger("server")

EXIT_ALREADY_RUNNING = 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deep-image-analogy-engine",
        description="Local Deep Image Analogy engine for the GIMP plug-in (HTTP on 127.0.0.1 only).",
    )
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 picks a free one (default)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--runtime-file",
        type=Path,
        default=None,
        help="where to publish port and token (default: see API.md)",
    )
    p.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit after this long without jobs or requests",
    )
    p.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    p.add_argument("--queue-size", type=int, default=4, help="jobs that may wait behind the running one")
    p.add_argument(
        "--abandon-after",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="cancel a job whose status nobody polled for this long (default 30)",
    )
    p.add_argument(
        "--keep-results",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long finished results stay fetchable (default 600)",
    )
    p.add_argument(
        "--max-body-mb",
        type=float,
        default=None,
        help="largest accepted request body in MiB (default: two raw RGBA images at the pixel limit)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="close a connection whose request line and headers take longer than this (default 10)",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="refuse an upload that pauses this long, or averages under 1 MiB/s beyond it (default 30)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=64,
        help="open connections at most; beyond, the one idle the longest is closed (default 64)",
    )
    p.add_argument(
        "--lazy-model", action="store_true", help="load the network on the first job, not at start"
    )
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    p.add_argument("--version", action="version", version=__version__)
    return p


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ServerConfig:
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0..65535")
    if args.queue_size < 1:
        parser.error("--queue-size must be at least 1")
    if args.max_connections < 2:
        parser.error("--max-connections must be at least 2")
    for name in ("idle_exit", "abandon_after", "keep_results", "header_timeout", "body_timeout"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.max_body_mb is not None and not args.max_body_mb > 0:
        parser.error("--max-body-mb must be positive")
    return ServerConfig(
        port=args.port,
        device=args.device,
        queue_size=args.queue_size,
        abandon_after=args.abandon_after,
        keep_results=args.keep_results,
        max_body=int(args.max_body_mb * 2**20) if args.max_body_mb else 0,  # 0: filled in by main()
        idle_exit=args.idle_exit,
        parent_pid=args.parent_pid,
        runtime_file=args.runtime_file,
        lazy_model=args.lazy_model,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
        test_hooks=test_hooks_enabled(),
    )


def running_engine(path: Path) -> dict | None:
    """The engine a runtime file describes, if it is alive and answers with its token."""
    info = runtime_file.read(path)
    if not info or not isinstance(info.get("pid"), int) or info["pid"] == os.getpid():
        return None
    if not pid_alive(info["pid"]) or not isinstance(info.get("port"), int):
        return None
    request = urllib.request.Request(
        f"http://127.0.0.1:{info['port']}/v1/health", headers={"X-DIA-Token": str(info.get("token", ""))}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:  # loopback only
            json.load(answer)
    except (OSError, ValueError):
        return None
    return info


class EngineServer(uvicorn.Server):
    """uvicorn.Server that publishes the runtime file only once it is really listening, and
    tells the app (`stopping`) as soon as it begins to shut down."""

    def __init__(
        self, config: uvicorn.Config, on_ready: Callable[[], None], stopping: threading.Event
    ) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self._stopping = stopping

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            self._on_ready()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._stopping.set()  # uploads still being read are answered 503 at once
        await super().shutdown(sockets=sockets)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args, parser)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if config.parent_pid is not None and not pid_alive(config.parent_pid):
        print(
            f"deep-image-analogy-engine: parent process {config.parent_pid} is not running", file=sys.stderr
        )
        return 2
    path = config.runtime_file or runtime_file.default_path()
    # The lock decides which engine owns the path, even for two started at the same instant;
    # the runtime file's contents are only for the message (and where flock does not exist).
    lock = runtime_file.Lock(path)
    try:
        locked = lock.acquire()
    except OSError as error:
        print(f"deep-image-analogy-engine: cannot lock {lock.path}: {error}", file=sys.stderr)
        return 2
    other = running_engine(path) if not locked or not lock.enforced else None
    if not locked or other is not None:
        where = (
            f"at {other.get('url')} (pid {other['pid']}, runtime file {path})"
            if other
            else f"for {path} (it holds {lock.path}; still starting?)"
        )
        print(
            f"deep-image-analogy-engine: an engine is already running {where}; "
            "use --runtime-file to start another",
            file=sys.stderr,
        )
        lock.release()
        return EXIT_ALREADY_RUNNING
    try:
        return serve(config, path, args.log_level)
    finally:
        lock.release()


def serve(config: ServerConfig, path: Path, log_level: str) -> int:
    # Imported only now: torch and the engine take seconds to import, which --help, argument
    # errors and the checks above should not wait for.
    from analogy_engine import analogy

    from .app import create_app
    from .engines import EnginePool, resolve_device
    from .jobs import JobManager
    from .protocol import GuardedH11Protocol

    if not config.max_body:
        config = dataclasses.replace(config, max_body=default_max_body())
    try:
        device = resolve_device(config.device)
    except ValueError as error:
        print(f"deep-image-analogy-engine: {error}", file=sys.stderr)
        return 2

    raise_file_limit()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", config.port))
    except OSError as error:
        print(
            f"deep-image-analogy-engine: cannot listen on 127.0.0.1:{config.port}: {error}", file=sys.stderr
        )
        return 2
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(32)
    info = {
        "port": port,
        "token": token,
        "pid": os.getpid(),
        "version": __version__,
        "url": f"http://127.0.0.1:{port}",
    }

    manager = JobManager(config, EnginePool(device), analogy)
    if config.test_hooks:  # DIA_TEST_HOOKS=1: jobs may ask to fail, run out of memory or hold
        from . import test_hooks

        test_hooks.install(manager)
    stopping = threading.Event()
    app = create_app(config, manager, token=token, port=port, device=device, stopping=stopping)
    debug = log_level == "debug"
    server = EngineServer(
        uvicorn.Config(
            app,
            log_config=None,  # keep our stderr logging format
            log_level=log_level,
            access_log=debug,
            proxy_headers=False,  # nothing sits in front of us; never trust X-Forwarded-*
            server_header=False,
            lifespan="off",
            timeout_graceful_shutdown=3,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            # asyncio accepts up to `backlog` connections before any of them reaches the
            # protocol's cap: keep a burst within what the cap can sort out.
            backlog=config.max_connections,
            # uvicorn's h11 protocol plus a header timeout, a connection cap and JSON errors
            http=GuardedH11Protocol.configured(config.header_timeout, config.max_connections),
        ),
        on_ready=lambda: _publish(path, info, device, config.test_hooks),
        stopping=stopping,
    )

    def stop(reason: str) -> None:
        server.should_exit = True

    watchdog = Watchdog(stop, manager.idle_seconds, config.idle_exit, config.parent_pid)
    # uvicorn re-raises SIGTERM after its graceful shutdown; with the default handler that would
    # kill us before the runtime file is removed, so make the re-raise harmless.
    signal.signal(signal.SIGTERM, lambda *_: None)
    if hasattr(signal, "SIGHUP"):  # a closed terminal: stop cleanly, runtime file removed
        signal.signal(signal.SIGHUP, lambda *_: stop("SIGHUP"))
    manager.start()
    watchdog.start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        watchdog.cancel()
        if runtime_file.remove_if_ours(path, info["pid"], token):
            log.info("removed runtime file %s", path)
        stopped = manager.shutdown()
        with contextlib.suppress(OSError):
            sock.close()
    log.info("engine stopped")
    if not stopped:
        # The worker is still inside PyTorch; letting the interpreter finalise under it aborts
        # the process ("terminate called without an active exception"), so leave at once.
        log.warning("the running job did not stop in time; exiting without waiting for it")
        logging.shutdown()
        os._exit(0)
    return 0


def raise_file_limit() -> None:
    """Soft limit on open files up to the hard one: connections beyond the cap are accepted
    (to be closed) only while descriptors remain."""
    try:
        import resource
    except ImportError:  # not Unix
        return
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = hard if hard != resource.RLIM_INFINITY else 65536
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _publish(path: Path, info: dict, device: str, test_hooks: bool) -> None:
    runtime_file.write(path, info)
    log.info(
        "engine %s listening on %s (device %s), runtime file %s%s",
        __version__,
        info["url"],
        device,
        path,
        "; TEST HOOKS ENABLED" if test_hooks else "",
    )


if __name__ == "__main__":
    sys.exit(main())
