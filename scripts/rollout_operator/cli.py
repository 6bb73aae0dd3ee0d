"""``modelship-rollout`` (``scripts/rollout`` in a checkout): drive ModelRollouts by hand.

Every command is one patch of the resource, so ``kubectl`` does the same (see the README):

* ``promote NAME``: annotate ``modelship.io/promote=<token>``: ends the current pause (or the wait
  for analysis, or an inconclusive-analysis pause); ``--full`` (``modelship.io/promote-full``)
  skips all remaining steps and analysis and promotes now.
* ``abort NAME``: ``spec.abort: true``: remove the canary (and undo a promotion in progress).
* ``retry NAME``: ``spec.abort: false`` plus ``modelship.io/retry=<token>``: start the rollout
  of the same version again after it failed or was aborted.
* ``pause NAME`` / ``resume NAME``: ``spec.paused``: hold the steps where they are.
* ``status NAME [--watch]``: what the operator reports; ``--watch`` follows until the rollout
  ends and exits 0 only if it succeeded.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Sequence
from typing import Any

from kubernetes.client.exceptions import ApiException

from rollout_operator.kube import Kube, current_namespace, load_client
from rollout_operator.names import ANN_PROMOTE, ANN_PROMOTE_FULL, ANN_RETRY
from rollout_operator.phases import DONE_PHASES, Phase

TERMINAL = (*DONE_PHASES, Phase.INVALID)


def token() -> str:
    """A unique command token (time + random), so repeating a command acts again."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"


def command_patch(command: str, full: bool = False) -> dict[str, Any]:
    """The merge patch that asks the operator for ``command``."""
    if command == "promote":
        return {"metadata": {"annotations": {ANN_PROMOTE_FULL if full else ANN_PROMOTE: token()}}}
    if command == "abort":
        return {"spec": {"abort": True}}
    if command == "retry":
        return {"metadata": {"annotations": {ANN_RETRY: token()}}, "spec": {"abort": False}}
    if command in ("pause", "resume"):
        return {"spec": {"paused": command == "pause"}}
    raise ValueError(f"unknown command {command!r}")


def describe(obj: dict[str, Any]) -> str:
    """A human summary of a ModelRollout and its status."""
    meta, spec, st = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    model = spec.get("model") or {}
    analysis = st.get("analysis") or {}
    last = analysis.get("last") or {}
    strategy = (spec.get("strategy") or {}).get("type", "canary")
    lines = [
        f"ModelRollout {meta['namespace']}/{meta['name']} (generation {meta.get('generation')}, "
        f"observed {st.get('observedGeneration', '-')})",
        f"  Phase:     {st.get('phase') or 'Pending (not seen by the operator yet)'}"
        + (f" ({st['pauseReason']})" if st.get("pauseReason") else "")
        + (f" ({st['rollbackReason']})" if st.get("rollbackReason") else ""),
        f"  Target:    Deployment {(spec.get('targetRef') or {}).get('name')}, "
        f"version {model.get('version')} ({strategy})",
        *(_traffic_lines(st) if strategy == "traffic" else _canary_lines(st)),
        f"  Analysis:  {analysis.get('summary', '-')}",
    ]
    if last:
        values = ", ".join(f"{m['name']}={m.get('value')}" for m in last.get("metrics", []))
        lines.append(f"             last {last.get('phase')} at {last.get('at')}: {values}")
    lines.append(f"  Message:   {st.get('message', '')}")
    for cond in st.get("conditions") or []:
        lines.append(f"  {cond['type']}={cond['status']} ({cond.get('reason', '')})")
    return "\n".join(lines)


def _canary_lines(st: dict[str, Any]) -> list[str]:
    return [
        f"  Stable:    {st.get('stableVersion') or '-'}    Canary: {st.get('canaryVersion') or '-'}",
        f"  Step:      {st.get('progress', '-')}    Weight: {st.get('canaryWeight', 0)}% "
        f"({st.get('canaryReplicas', 0)} canary pod(s) wanted)",
    ]


def _traffic_lines(st: dict[str, Any]) -> list[str]:
    """The traffic strategy has no canary pods: the weight is a share of requests in every pod,
    the one every serving pod confirmed by reporting the traffic file's generation."""
    candidate = st.get("canaryVersion") or "-"
    generation = st.get("trafficGeneration") or ""
    applied = (
        f"generation {generation} applied by every serving pod"
        if generation
        else "no generation applied by every serving pod yet"
    )
    if not st.get("trafficPrepared") and st.get("canaryVersion"):
        applied += f"; preparing: waiting for every pod to load version {candidate}"
    weight = (
        f"{st.get('canaryWeight', 0)}% of requests on the candidate, confirmed by every pod "
        f"(step wants {st.get('desiredWeight', 0)}%)"
        if st.get("canaryVersion")
        else "- (no candidate)"
    )
    return [
        f"  Stable:    {st.get('stableVersion') or '-'}    Candidate: {candidate}",
        f"  Step:      {st.get('progress', '-')}    Weight: {weight}",
        f"  Traffic:   {applied}",
    ]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/rollout", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"
    )
    p.add_argument("--context", default=None, help="kubeconfig context")
    p.add_argument("-n", "--namespace", default=None, help="namespace (default: the context's)")
    sub = p.add_subparsers(dest="command", required=True)
    promote = sub.add_parser("promote", help="end the current pause (or, with --full, promote now)")
    promote.add_argument("--full", action="store_true", help="skip every remaining step and the analysis")
    sub.add_parser("abort", help="roll back and keep the rollout aborted (spec.abort: true)")
    sub.add_parser("retry", help="clear spec.abort and roll the same version out again")
    sub.add_parser("pause", help="hold the canary steps (spec.paused: true)")
    sub.add_parser("resume", help="continue the canary steps (spec.paused: false)")
    status = sub.add_parser("status", help="show the rollout's status")
    status.add_argument(
        "--watch", action="store_true", help="follow until the rollout ends; exit 0 on success"
    )
    status.add_argument(
        "--timeout", type=float, default=3600.0, help="give up watching after this many seconds"
    )
    status.add_argument("--json", action="store_true", help="print the resource as JSON")
    for sp in (promote, *[sub.choices[c] for c in ("abort", "retry", "pause", "resume")], status):
        sp.add_argument("name", help="the ModelRollout's name")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    kube = Kube(load_client(args.kubeconfig, args.context))
    namespace = args.namespace or current_namespace(args.kubeconfig, args.context)
    try:
        if args.command == "status":
            return _status(kube, namespace, args)
        obj = kube.patch_rollout(
            namespace, args.name, command_patch(args.command, getattr(args, "full", False))
        )
    except ApiException as exc:
        print(
            f"scripts/rollout: {args.command} {namespace}/{args.name}: HTTP {exc.status} {exc.reason}",
            file=sys.stderr,
        )
        return 1
    print(
        f"{args.command}: requested on ModelRollout {namespace}/{args.name} "
        f"(phase {(obj.get('status') or {}).get('phase', '-')})"
    )
    return 0


def _status(kube: Kube, namespace: str, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    shown = ""
    while True:
        obj = kube.get_rollout(namespace, args.name)
        if obj is None:
            print(f"scripts/rollout: ModelRollout {namespace}/{args.name} not found", file=sys.stderr)
            return 1
        text = json.dumps(obj, indent=2) if args.json else describe(obj)
        if text != shown:
            print(text + ("\n" if args.watch else ""), flush=True)
            shown = text
        phase = (obj.get("status") or {}).get("phase", "")
        if not args.watch:
            return 0
        if phase in TERMINAL and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"].get(
            "generation"
        ):
            return 0 if phase == Phase.SUCCEEDED else 1
        if time.monotonic() > deadline:
            print("scripts/rollout: timed out", file=sys.stderr)
            return 2
        time.sleep(2)


if __name__ == "__main__":
    sys.exit(main())
