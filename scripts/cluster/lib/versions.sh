# shellcheck shell=bash disable=SC2034
# Pinned versions and cache locations shared by scripts/cluster/{build,up,down}.
# Sourced, never executed. Change a version here and `build` produces a new cache entry.

K8S_VERSION="${MODELSHIP_K8S_VERSION:-v1.33.13}"        # newest 1.33 patch on the Go proxy
ETCD_VERSION="${MODELSHIP_ETCD_VERSION:-v3.5.35}"       # newest 3.5 patch on the Go proxy
METRICS_SERVER_VERSION="${MODELSHIP_METRICS_SERVER_VERSION:-v0.8.0}"  # built against k8s 0.33

MODELSHIP_CACHE="${MODELSHIP_CACHE:-$HOME/.cache/modelship}"
K8S_BIN_DIR="$MODELSHIP_CACHE/tools/kubernetes/$K8S_VERSION/bin"
ETCD_BIN_DIR="$MODELSHIP_CACHE/tools/etcd/$ETCD_VERSION/bin"
METRICS_SERVER_BIN_DIR="$MODELSHIP_CACHE/tools/metrics-server/$METRICS_SERVER_VERSION/bin"

K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
ETCD_BINARIES=(etcd etcdctl)
