"""Kubernetes API calls the operator and its CLI make, as plain JSON dicts (the official client's
typed models are skipped: responses are read raw so field names are exactly the API's).

Every write is idempotent: server-side apply under the ``modelship-rollout-operator`` field
manager, delete-if-present, set-a-pod-condition, replace-status with the resourceVersion read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from rollout_operator.names import API_VERSION, COMPONENT, FIELD_MANAGER, GROUP, KIND, PLURAL, VERSION

log = logging.getLogger("modelship.rollout.kube")

Obj = dict[str, Any]
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


def load_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An API client: in-cluster credentials inside a pod, else the kubeconfig (``$KUBECONFIG``)."""
    if kubeconfig is None and context is None:
        try:
            config.load_incluster_config()
            return client.ApiClient()
        except config.ConfigException:
            pass
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    return client.ApiClient(configuration=cfg)


def current_namespace(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The pod's namespace in a cluster, else the kubeconfig context's, else ``default``."""
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace", encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        pass
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        if context:
            contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
            active = next(c for c in contexts if c["name"] == context)
        return str(active["context"].get("namespace") or "default")
    except (config.ConfigException, StopIteration, KeyError, TypeError):
        return "default"


def micro_time(t: float) -> str:
    """A MicroTime/Time string for API objects."""
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _data(resp: Any) -> Obj:
    raw = resp.data
    return json.loads(raw) if raw else {}


def pod_proxy_path(namespace: str, pod: str, port: int, path: str, scheme: str = "http") -> str:
    """The API path of ``path`` on ``pod``'s ``port`` through ``pods/proxy``.

    The resource name is ``[scheme:]pod:port``; ``https:`` makes the API server speak TLS to the pod.
    """
    if scheme not in ("http", "https"):
        raise ValueError(f"pod proxy scheme must be http or https, not {scheme!r}")
    name = f"{pod}:{port}" if scheme == "http" else f"{scheme}:{pod}:{port}"
    return f"/api/v1/namespaces/{namespace}/pods/{name}/proxy/{path.lstrip('/')}"


def is_status(exc: BaseException, *codes: int) -> bool:
    return isinstance(exc, ApiException) and exc.status in codes


class Kube:
    """The handful of API operations the operator needs, on one ApiClient."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.coordination = client.CoordinationV1Api(api_client)

    # -- ModelRollouts ---------------------------------------------------------------------------

    def get_rollout(self, namespace: str, name: str) -> Obj | None:
        try:
            return _data(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list_rollouts(self, namespace: str) -> list[Obj]:
        resp = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, _preload_content=False
        )
        return list(_data(resp).get("items") or [])

    def replace_rollout_status(self, obj: Obj) -> Obj:
        """Write ``obj['status']``; fails with 409 if the object changed since it was read."""
        meta = obj["metadata"]
        return _data(
            self.custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], obj, _preload_content=False
            )
        )

    def patch_rollout(self, namespace: str, name: str, patch: Obj) -> Obj:
        """JSON merge patch of the resource (spec and metadata; the CLI's commands)."""
        return _data(
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, patch, _content_type=MERGE, _preload_content=False
            )
        )

    # -- Deployments and pods --------------------------------------------------------------------

    def get_deployment(self, namespace: str, name: str) -> Obj | None:
        try:
            return _data(self.apps.read_namespaced_deployment(name, namespace, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def apply_deployment(self, body: Obj, force: bool) -> Obj:
        """Server-side apply ``body`` under the operator's field manager."""
        meta = body["metadata"]
        return _data(
            self.apps.patch_namespaced_deployment(
                meta["name"],
                meta["namespace"],
                body,
                field_manager=FIELD_MANAGER,
                force=force,
                _content_type=APPLY,
                _preload_content=False,
            )
        )

    def delete_deployment(self, namespace: str, name: str) -> bool:
        try:
            self.apps.delete_namespaced_deployment(
                name, namespace, propagation_policy="Background", _preload_content=False
            )
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def get_configmap(self, namespace: str, name: str) -> Obj | None:
        try:
            return _data(self.core.read_namespaced_config_map(name, namespace, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def apply_configmap(self, body: Obj) -> Obj:
        """Server-side apply a ConfigMap under the operator's field manager (it owns the data it writes)."""
        meta = body["metadata"]
        return _data(
            self.core.patch_namespaced_config_map(
                meta["name"],
                meta["namespace"],
                body,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type=APPLY,
                _preload_content=False,
            )
        )

    def list_pods(self, namespace: str, selector: str) -> list[Obj]:
        resp = self.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
        return list(_data(resp).get("items") or [])

    def set_pod_condition(self, namespace: str, pod: str, condition: Obj) -> None:
        """Add or update one pod condition (strategic merge on ``type``) through ``pods/status``."""
        self.core.patch_namespaced_pod_status(
            pod, namespace, {"status": {"conditions": [condition]}}, _preload_content=False
        )

    def pod_proxy(
        self,
        namespace: str,
        pod: str,
        port: int,
        method: str,
        path: str,
        body: Any = None,
        timeout: float = 5.0,
        scheme: str = "http",
    ) -> tuple[int, bytes]:
        """An HTTP(S) request to a pod through the API server's pod proxy; (status, body)."""
        resource = pod_proxy_path(namespace, pod, port, path, scheme)
        headers = {"Accept": "*/*"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            resp = self.api_client.call_api(
                resource,
                method,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
            data = resp[0] if isinstance(resp, tuple) else resp
            return int(data.status), bytes(data.data)
        except ApiException as exc:
            return int(exc.status or 0), (exc.body or b"") if isinstance(exc.body, bytes) else str(
                exc.body
            ).encode()

    # -- events and leases -----------------------------------------------------------------------

    def create_event(
        self, rollout: Obj, type_: str, reason: str, message: str, now: float, instance: str
    ) -> None:
        meta = rollout["metadata"]
        stamp = micro_time(now)[:19] + "Z"
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": f"{GROUP}/rollout-operator",
            "reportingInstance": instance[:128],
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        self.core.create_namespaced_event(meta["namespace"], body, _preload_content=False)

    def get_lease(self, namespace: str, name: str) -> Obj | None:
        try:
            return _data(self.coordination.read_namespaced_lease(name, namespace, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_lease(self, namespace: str, body: Obj) -> Obj:
        return _data(self.coordination.create_namespaced_lease(namespace, body, _preload_content=False))

    def replace_lease(self, namespace: str, body: Obj) -> Obj:
        return _data(
            self.coordination.replace_namespaced_lease(
                body["metadata"]["name"], namespace, body, _preload_content=False
            )
        )


class ListWatchSource:
    """List and watch one kind of object in a namespace, raw: what :class:`~.watcher.Watcher` consumes."""

    def __init__(
        self, list_fn: Any, namespace: str, label_selector: str | None = None, page: int = 500
    ) -> None:
        self.list_fn, self.namespace, self.label_selector, self.page = (
            list_fn,
            namespace,
            label_selector,
            page,
        )

    def _kwargs(self) -> dict[str, Any]:
        return {"label_selector": self.label_selector} if self.label_selector else {}

    def list(self) -> tuple[list[Obj], str]:
        items: list[Obj] = []
        token: str | None = None
        while True:
            extra = {"_continue": token} if token else {}
            resp = self.list_fn(
                self.namespace, limit=self.page, _preload_content=False, **self._kwargs(), **extra
            )
            doc = _data(resp)
            items.extend(doc.get("items") or [])
            token = (doc.get("metadata") or {}).get("continue")
            if not token:
                return items, str(doc["metadata"]["resourceVersion"])

    def watch(self, resource_version: str, timeout_seconds: int) -> Iterator[Obj]:
        resp = self.list_fn(
            self.namespace,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            _request_timeout=(10, timeout_seconds + 30),
            **self._kwargs(),
        )
        try:
            for line in iter_resp_lines(resp):
                if line.strip():
                    yield json.loads(line)
        finally:
            resp.close()
            resp.release_conn()
