"""The Modelship rollout operator: moves a serving Deployment from one model version to the next.

A ``ModelRollout`` (``modelship.io/v1alpha1``) names the Helm release's serving Deployment, the
model version to roll out and how: a canary Deployment weighted by replica ratio with
analysis of the pods' own Prometheus metrics and of prediction disagreement, or the Deployment's
own rolling update. Layout, from pure to I/O:

* ``names``, ``durations``: constants and small parsers.
* ``spec``, ``status``, ``observations``: typed views of the resource and of the cluster.
* ``phases``: the StrEnums of every phase, condition reason and event reason written to the cluster.
* ``window``, ``pod_metrics`` (pod scrape), ``prometheus``, ``disagreement``, ``verdict``: analysis;
  ``templates``: manifests.
* ``decide`` (entry: ``reconcile``) with ``context``, ``canary``, ``canary_steps``, ``promotion``,
  ``rollback``, ``measurement``, ``conditions``, ``weights``, ``probe_plan`` and ``actions``: the
  state machine, pure.
* ``kube``, ``pod_http``, ``probes``, ``driver``: Kubernetes and HTTP I/O around one reconcile.
* ``workqueue``, ``watcher``, ``leader``, ``controller``, ``health``, ``metrics``: the process.
* ``__main__`` runs the operator; ``cli`` is the promote/abort/retry/status client.
"""
