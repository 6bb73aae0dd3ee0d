"""``modelship-rollout-operator`` (or ``python -m rollout_operator``): run the operator for one namespace.

Waits for the leader Lease, then watches ModelRollouts and reconciles them until SIGTERM, when it
stops its workers and releases the Lease. Serves /metrics, /healthz and /readyz throughout.
Exit status 1 means leadership was lost (the pod restarts clean).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from rollout_operator.controller import Controller
from rollout_operator.driver import Driver
from rollout_operator.health import HealthServer
from rollout_operator.kube import Kube, current_namespace, load_client
from rollout_operator.leader import LeaderElector
from rollout_operator.metrics import OperatorMetrics
from rollout_operator.pod_tls import PodTls, PodTlsError

log = logging.getLogger("modelship.rollout")
STALE_AFTER = 60.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modelship-rollout-operator",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--namespace",
        default=os.environ.get("WATCH_NAMESPACE"),
        help="namespace whose ModelRollouts to manage (default: $WATCH_NAMESPACE, the pod's or "
        "the kubeconfig context's namespace)",
    )
    p.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig file when running outside a cluster "
        "(default: in-cluster credentials, else $KUBECONFIG)",
    )
    p.add_argument("--context", default=None, help="kubeconfig context")
    p.add_argument("--listen", default="0.0.0.0:8080", help="address of /metrics, /healthz and /readyz")
    p.add_argument("--workers", type=int, default=2, help="rollouts reconciled in parallel")
    p.add_argument("--resync-seconds", type=float, default=30.0, help="re-check every rollout this often")
    p.add_argument(
        "--pod-access",
        choices=("direct", "proxy"),
        default="direct",
        help="reach serving pods by IP (in cluster) or through the API server's pod proxy",
    )
    p.add_argument(
        "--server-token-file",
        default=os.environ.get("MODELSHIP_ROLLOUT_SERVER_TOKEN_FILE"),
        help="bearer token for the serving pods' model APIs when their auth is on",
    )
    p.add_argument(
        "--pod-tls-ca-file",
        metavar="PATH",
        default=None,
        help="CA bundle that signed the serving pods' certificates (their TLS is on): direct requests "
        "use HTTPS and verify the pods' certificates against it (re-read when it changes); with "
        "--pod-access=proxy it only switches the API server's pod proxy to https",
    )
    p.add_argument(
        "--pod-tls-server-name",
        metavar="NAME",
        default=None,
        help="name checked in the pods' certificates (and sent as SNI): pods are reached by IP, "
        "their certificates name the Service, e.g. <release>.<namespace>.svc; unset: the chain is "
        "verified against the CA but no name is checked",
    )
    p.add_argument(
        "--pod-tls-cert-file",
        metavar="PATH",
        default=None,
        help="client certificate presented to the pods (servers with --tls_client_auth=require); "
        "needs --pod-tls-key-file and --pod-access=direct; re-read when it changes",
    )
    p.add_argument(
        "--pod-tls-key-file",
        metavar="PATH",
        default=None,
        help="private key of --pod-tls-cert-file",
    )
    p.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="hold a coordination.k8s.io Lease so only one instance acts",
    )
    p.add_argument("--lease-name", default="modelship-rollout-operator", help="name of the Lease")
    p.add_argument(
        "--lease-duration", type=float, default=15.0, help="seconds a standby waits before taking over"
    )
    p.add_argument("--renew-deadline", type=float, default=10.0, help="seconds the leader may fail to renew")
    p.add_argument("--retry-period", type=float, default=2.0, help="seconds between Lease attempts")
    p.add_argument(
        "--identity",
        default=os.environ.get("POD_NAME"),
        help="this instance's Lease identity (default: $POD_NAME or the host name, plus a random suffix)",
    )
    p.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "info"),
        choices=("debug", "info", "warning", "error"),
        help="log level",
    )
    return p


def pod_tls(args: argparse.Namespace) -> PodTls | None:
    """The serving pods' TLS settings from the ``--pod-tls-*`` flags (None: plain HTTP).

    Raises :class:`PodTlsError` for a combination that cannot work, or files that cannot be loaded
    (the context is built once here so a bad file stops the operator at start-up).
    """
    cert, key = args.pod_tls_cert_file, args.pod_tls_key_file
    pair = "a client certificate is a certificate and its key"
    if cert and not key:
        raise PodTlsError(f"--pod-tls-cert-file needs --pod-tls-key-file: {pair}")
    if key and not cert:
        raise PodTlsError(f"--pod-tls-key-file needs --pod-tls-cert-file: {pair}")
    if not args.pod_tls_ca_file:
        given = [
            flag
            for flag, value in (
                ("--pod-tls-server-name", args.pod_tls_server_name),
                ("--pod-tls-cert-file", cert),
                ("--pod-tls-key-file", key),
            )
            if value
        ]
        if given:
            raise PodTlsError(
                f"{', '.join(given)} needs --pod-tls-ca-file (which turns on HTTPS to the pods)"
            )
        return None
    if cert and args.pod_access == "proxy":
        raise PodTlsError(
            "--pod-tls-cert-file does not work with --pod-access=proxy: the API server's pod proxy "
            "makes the TLS connection and presents no client certificate, so servers requiring one "
            "(mTLS) refuse it; use --pod-access=direct"
        )
    tls = PodTls(args.pod_tls_ca_file, args.pod_tls_server_name, cert, key)
    if args.pod_access == "direct":
        tls.context()
    return tls


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        tls = pod_tls(args)
    except PodTlsError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    namespace = args.namespace or current_namespace(args.kubeconfig, args.context)
    identity = f"{args.identity or socket.gethostname()}-{secrets.token_hex(3)}"
    kube = Kube(load_client(args.kubeconfig, args.context))
    token = None
    if args.server_token_file:
        with open(args.server_token_file, encoding="utf-8") as f:
            token = f.read().strip()
    metrics = OperatorMetrics()
    if tls is not None and args.pod_access == "proxy":
        log.info("HTTPS to serving pods through the API server's pod proxy (https: resource names)")
    elif tls is not None:
        log.info("%s", tls.describe())
        if not tls.server_name:
            log.warning(
                "--pod-tls-server-name is not set: the pods' certificates are verified against the CA "
                "but their names are not checked"
            )
    driver = Driver(kube, metrics, identity, args.pod_access, token, pod_tls=tls)
    controller = Controller(kube, driver, namespace, metrics, args.workers, args.resync_seconds)
    elector = (
        LeaderElector(
            kube,
            namespace,
            args.lease_name,
            identity,
            args.lease_duration,
            args.renew_deadline,
            args.retry_period,
        )
        if args.leader_elect
        else None
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    leading = threading.Event()

    def alive() -> bool:
        beat = (
            controller.heartbeat
            if leading.is_set()
            else (elector.last_activity if elector else time.monotonic())
        )
        return time.monotonic() - beat < STALE_AFTER

    def ready() -> bool:
        return controller.synced() if leading.is_set() else True

    host, _, port = args.listen.rpartition(":")
    health = HealthServer((host or "0.0.0.0", int(port)), metrics.render, alive, ready)
    health.start()
    log.info(
        "rollout operator %s for namespace %s (metrics and probes on %s)", identity, namespace, args.listen
    )
    ok = True
    try:
        if elector is not None and not elector.acquire(stop):
            return 0
        leading.set()
        controller.heartbeat = time.monotonic()
        metrics.leader.set(1)
        ctl_stop = threading.Event()
        worker = threading.Thread(target=controller.run, args=(ctl_stop,), name="controller", daemon=True)
        worker.start()
        if elector is not None:
            ok = elector.hold(stop)
        else:
            stop.wait()
        ctl_stop.set()
        worker.join(timeout=15)
    finally:
        if elector is not None:
            elector.release()
        metrics.leader.set(0)
        health.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
