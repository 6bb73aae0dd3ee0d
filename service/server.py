"""The server process: builds repository, dataplane and transports, owns signals and shutdown.

Shutdown on SIGTERM/SIGINT: readiness turns false at once; after ``shutdown_delay_seconds`` the
listeners close and in-flight requests finish, bounded by ``shutdown_timeout_seconds``; then the
process exits 0. A second signal exits at once. A watchdog exits 1 if draining overruns the bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import uvicorn

from service import model_config, process
from service.auth import TokenAuth
from service.batching import BatchingParameters
from service.dataplane import DataPlane
from service.errors import ServingError
from service.grpc.server import GrpcServer
from service.memory import MemoryBudget, default_budget
from service.metrics import Metrics
from service.repository import ModelRepository
from service.rest.app import create_app
from service.rest.client_cert import ClientCertProtocol
from service.settings import Settings, available_cpus
from service.tls import TlsFiles, TlsManager
from service.traffic import ShadowWorker, Traffic, TrafficFile
from service.validation import run_candidate

log = logging.getLogger("service")


def server_version() -> str:
    try:
        return package_version("modelship")
    except PackageNotFoundError:
        return "0.0.0"


def configure_tensorflow(settings: Settings) -> None:
    """TF thread pools sized for the CPUs this process may use (before any TF op runs).

    Not with ``--runtime=litert``: that server never imports TensorFlow (the slim image has none).
    """
    if settings.runtime == "litert":
        return
    import tensorflow as tf

    intra = settings.tensorflow_intra_op_parallelism or available_cpus()
    inter = settings.tensorflow_inter_op_parallelism or intra
    with contextlib.suppress(RuntimeError):  # already initialised (tests running in-process)
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)


class _QuietUvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: :class:`ModelServer` owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ModelServer:
    """One process serving REST (and gRPC) over one dataplane."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.memory = MemoryBudget(
            settings.memory_budget_bytes or default_budget(), on_refusal=self.metrics.memory_refused
        )
        self.metrics.watch_memory(self.memory)
        self.repository = ModelRepository(
            settings.models(),
            poll_seconds=settings.file_system_poll_wait_seconds,
            settle_seconds=settings.version_settle_seconds,
            verify_manifest=settings.verify_manifest,
            enable_warmup=settings.enable_model_warmup,
            listener=self.metrics.model_state,
            runtime=settings.runtime,
            remote_poll_seconds=settings.object_store_poll_wait_seconds,
            cache_dir=settings.model_cache_dir,
            cache_max_bytes=settings.model_cache_max_bytes,
        )
        self.metrics.watch_repository(self.repository)
        batching = (
            BatchingParameters.load(settings.batching_parameters_file, available_cpus())
            if settings.enable_batching
            else None
        )
        # The traffic file's version pins reach the repository before its first load decision:
        # the polling thread starts in serve(), after this load.
        self.traffic = Traffic(on_apply=lambda config: self.repository.pin(config.pins()))
        self.traffic_file = (
            TrafficFile(
                settings.traffic_config_file,
                self.traffic,
                self.repository.model_names,
                optional=settings.traffic_config_file_optional,
            )
            if settings.traffic_config_file is not None
            else None
        )
        if self.traffic_file is not None:
            self.traffic_file.load()  # invalid, or missing unless optional: a start-up error
        shadow = ShadowWorker(run_candidate, self.metrics, settings.shadow_queue_size)
        self.metrics.watch_traffic(self.traffic, lambda: shadow.pending)
        self.dataplane = DataPlane(
            self.repository,
            workers=settings.model_threads or None,
            inline_max_rows=settings.inline_max_rows,
            batching=batching,
            on_batch=self.metrics.batch_size.observe,
            traffic=self.traffic,
            shadow=shadow,
        )
        self.auth = TokenAuth(settings.auth_token_value())
        self.tls = self._tls(settings)
        self._stopping = asyncio.Event()
        self._signals = 0

    def _tls(self, settings: Settings) -> TlsManager | None:
        """The TLS material both ports serve (None: plaintext); invalid material stops the start."""
        if not settings.tls_enabled:
            return None
        files = TlsFiles(
            settings.tls_cert_file,
            settings.tls_key_file,
            settings.tls_client_ca_file,
            settings.ssl_config_file,
            settings.tls_client_auth,
        )
        tls = TlsManager(files, settings.tls_poll_wait_seconds)
        tls.on_reload(lambda ok: self.metrics.tls_reloads.labels("ok" if ok else "error").inc())
        log.info(
            "TLS on both ports from %s: certificate sha256 %s, client certificates %s",
            files.describe(),
            tls.material.fingerprint[:16],
            tls.client_auth,
        )
        return tls

    def build_rest(self) -> uvicorn.Server:
        app = create_app(
            self.dataplane,
            self.metrics,
            self.auth,
            self.settings.max_request_bytes,
            server_version(),
            self.memory,
            cors=self.settings.rest_api_enable_cors_support,
            require_client_cert=self.tls is not None and self.tls.client_auth == "require",
        )
        tls = self.tls
        config = uvicorn.Config(
            app,
            host=self.settings.host,
            port=self.settings.rest_api_port,
            loop="none",
            # with TLS: the connection's client certificate reaches the scope (mTLS per request)
            http=ClientCertProtocol if tls is not None else "httptools",
            ssl_context_factory=(lambda _config, _default: tls.listener_context("rest")) if tls else None,
            ws="none",  # no WebSocket endpoints: do not load a WebSocket library either
            lifespan="off",
            access_log=self.settings.access_log,
            log_config=None,
            timeout_graceful_shutdown=int(max(1, self.settings.shutdown_timeout_seconds)),
            server_header=False,
        )
        return _QuietUvicorn(config)

    def build_grpc(self) -> GrpcServer:
        s = self.settings
        receive, send = s.grpc_message_limits()
        return GrpcServer(
            self.dataplane,
            self.metrics,
            self.auth,
            s.host,
            s.port,
            receive,
            send,
            self.memory,
            s.enable_serialization_as_tensor_content,
            s.grpc_channel_arguments,
            s.grpc_server,
            self.tls,
        )

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self.repository.start()
        config_task = asyncio.create_task(self._watch_config())
        traffic_task = (
            asyncio.create_task(self.traffic_file.watch(self.settings.traffic_config_file_poll_wait_seconds))
            if self.traffic_file is not None
            else None
        )
        tls_task = asyncio.create_task(self.tls.watch()) if self.tls is not None else None
        grpc_server = self.build_grpc() if self.settings.port else None
        if grpc_server is not None:
            await grpc_server.start()
        rest = self.build_rest() if self.settings.rest_api_port else None
        rest_task = asyncio.create_task(rest.serve()) if rest else None
        log.info(
            "serving %s: REST%s on %s:%s, gRPC%s on %s:%s; in-flight memory budget %d MiB",
            ", ".join(self.repository.model_names()),
            " (HTTPS)" if self.tls else "",
            self.settings.host,
            self.settings.rest_api_port,
            " (TLS)" if self.tls else "",
            self.settings.host,
            self.settings.port,
            self.memory.limit >> 20,
        )
        waiters: list[asyncio.Task[Any]] = [asyncio.create_task(self._stopping.wait())]
        if rest_task:
            waiters.append(rest_task)
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        await self._drain(rest, rest_task, grpc_server)
        config_task.cancel()
        for task in (traffic_task, tls_task):
            if task is not None:
                task.cancel()

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second %s: exiting now", sig.name)
            os._exit(1)
        log.info("%s received: not ready, draining", sig.name)
        self.dataplane.start_draining()
        self._stopping.set()

    async def _drain(
        self,
        rest: uvicorn.Server | None,
        rest_task: asyncio.Task[None] | None,
        grpc_server: GrpcServer | None,
    ) -> None:
        self.dataplane.start_draining()
        bound = self.settings.shutdown_delay_seconds + self.settings.shutdown_timeout_seconds + 5
        watchdog = threading.Timer(bound, _overrun, args=(bound,))
        watchdog.daemon = True
        watchdog.start()
        if self.settings.shutdown_delay_seconds:
            await asyncio.sleep(self.settings.shutdown_delay_seconds)
        stops = []
        if rest is not None and rest_task is not None:
            rest.should_exit = True
            stops.append(rest_task)
        if grpc_server is not None:
            stops.append(asyncio.create_task(grpc_server.stop(self.settings.shutdown_timeout_seconds)))
        await asyncio.gather(*stops)  # REST and gRPC drain together
        self.repository.stop()
        self.dataplane.close()
        watchdog.cancel()
        log.info("shutdown complete")

    async def _watch_config(self) -> None:
        path = self.settings.model_config_file
        interval = self.settings.model_config_file_poll_wait_seconds
        if path is None or interval <= 0:
            return
        last = path.read_text()
        while True:
            await asyncio.sleep(interval)
            try:
                text = path.read_text()
                if text != last:
                    self.repository.reconfigure(model_config.parse(text, str(path)))
                    last = text
                    log.info("model config reloaded from %s", path)
            except (OSError, ServingError) as exc:
                log.error("model config %s not reloaded: %s", path, exc)


def _overrun(bound: float) -> None:
    log.error("shutdown did not finish within %.0fs; exiting", bound)
    os._exit(1)


def run(settings: Settings) -> None:
    """Configure logging and TensorFlow, then serve until a signal arrives."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    configure_tensorflow(settings)
    log.info("imports done (%s)", process.describe())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(ModelServer(settings).serve())
