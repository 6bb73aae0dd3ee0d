# shellcheck shell=bash disable=SC2034
# Layout, addresses and process helpers shared by scripts/cluster/{up,down,load-image}.
# Sourced, never executed.

# shellcheck source=scripts/cluster/lib/versions.sh
source "$(dirname "${BASH_SOURCE[0]}")/versions.sh"

# Everything the cluster writes lives under CLUSTER_DIR (persistent) and RUN_DIR (runtime).
CLUSTER_DIR="${MODELSHIP_CLUSTER_DIR:-/var/lib/modelship-cluster}"
RUN_DIR="${MODELSHIP_CLUSTER_RUN_DIR:-/run/modelship-containerd}"
CONTAINERD_SOCK="$RUN_DIR/containerd.sock"
KUBECONFIG_PATH="$CLUSTER_DIR/admin.kubeconfig"
LOG_DIR="$CLUSTER_DIR/logs"
PID_DIR="$CLUSTER_DIR/pids"

# Addresses: all on interfaces this script creates; nothing routes off the machine.
NODE_NAME="${MODELSHIP_CLUSTER_NODE_NAME:-modelship-node}"
NODE_IFACE=mship-node0          # port-less bridge used as a dummy interface holding NODE_IP
NODE_IP="${MODELSHIP_CLUSTER_NODE_IP:-10.240.0.1}"
POD_BRIDGE=mship0               # CNI bridge the pods attach to
POD_CIDR=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/24
SERVICE_IP=10.96.0.1            # the `kubernetes` Service
DNS_IP=10.96.0.10               # cluster DNS address (no DNS server is started by default)
APISERVER_URL="https://$NODE_IP:6443"
FWD_CHAIN=MODELSHIP-FORWARD     # our filter/FORWARD rules (pod bridge only)
PAUSE_IMAGE=registry.k8s.io/pause:3.10

# Host paths the kubelet/containerd create outside CLUSTER_DIR regardless of their root dirs;
# `up` records which of them did not exist before, and `down` removes only those.
HOST_PATHS=(/var/lib/kubelet /var/lib/cni)
# Kernel settings the kubelet changes; `up` saves the originals, `down` restores them.
# (net.ipv4.ip_forward and bridge-nf-call-iptables are set to 1 and left so: Docker needs
# them too, and turning them off under a running dockerd would break its containers.)
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

clog() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

ctr_k8s() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# component_pid NAME: print the PID recorded for NAME if that process is still the binary
# we started (same executable path), so a recycled PID is never mistaken for ours.
component_pid() {
  local f="$PID_DIR/$1.pid" pid exe
  [[ -f "$f" ]] || return 1
  read -r pid exe <"$f" || return 1
  [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
  [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$exe" ]] || return 1
  echo "$pid"
}

# start_component NAME BINARY ARGS...: start detached (own session), log to LOG_DIR/NAME.log,
# record "PID EXE" in PID_DIR/NAME.pid. No-op if our recorded process is still running.
start_component() { start_component_env "$1" "" "${@:2}"; }

# start_component_env NAME "VAR=value ..." BINARY ARGS...: as start_component, with extra env.
start_component_env() {
  local name="$1" envs="$2" bin="$3"; shift 3
  local pid
  if pid="$(component_pid "$name")"; then
    clog "$name already running (pid $pid)"; return 0
  fi
  mkdir -p "$LOG_DIR" "$PID_DIR"
  local exe
  exe="$(readlink -f "$bin")"
  printf '\n===== %s start %s\n' "$name" "$(date -Is)" >>"$LOG_DIR/$name.log"
  # shellcheck disable=SC2086  # envs is a space-separated list of VAR=value words
  env $envs setsid "$exe" "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid $exe" >"$PID_DIR/$name.pid"
  # env and setsid exec in place; wait until the PID is the component itself.
  local i
  for ((i = 0; i < 50; i++)); do
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$exe" || ! -d "/proc/$pid" ]] && break
    sleep 0.1
  done
  clog "started $name (pid $pid)"
}

# stop_component NAME [TIMEOUT]: SIGTERM our recorded PID, SIGKILL after TIMEOUT seconds.
stop_component() {
  local name="$1" timeout="${2:-20}" pid i
  if ! pid="$(component_pid "$name")"; then
    rm -f "$PID_DIR/$name.pid"; return 0
  fi
  clog "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 5; i++)); do
    [[ -d "/proc/$pid" ]] || break
    sleep 0.2
  done
  if [[ -d "/proc/$pid" ]]; then
    clog "$name did not exit in ${timeout}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$PID_DIR/$name.pid"
}

# wait_until DESC TIMEOUT LOGNAME CMD...: poll CMD every second until it succeeds.
wait_until() {
  local desc="$1" timeout="$2" logname="$3"; shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      clog "timed out after ${timeout}s waiting for $desc"
      [[ -n "$logname" && -f "$LOG_DIR/$logname.log" ]] && {
        clog "last lines of $LOG_DIR/$logname.log:"; tail -n 25 "$LOG_DIR/$logname.log" >&2; }
      return 1
    fi
    if [[ -n "$logname" ]] && ! component_pid "$logname" >/dev/null; then
      clog "$logname exited while waiting for $desc; last lines of $LOG_DIR/$logname.log:"
      tail -n 25 "$LOG_DIR/$logname.log" >&2
      return 1
    fi
    sleep 1
  done
}
