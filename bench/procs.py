"""Child processes of the benchmark: start (optionally pinned), measure, and always clean up.

Servers run in their own session, so stopping one signals exactly the process group this harness
created (its id is the server's pid) and nothing else. Every started process is registered and
stopped on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_LIVE: dict[int, subprocess.Popen[bytes]] = {}


def _stop_all() -> None:
    for proc in list(_LIVE.values()):
        stop(proc, timeout=5)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


atexit.register(_stop_all)


def install_signal_handlers() -> None:
    """SIGTERM behaves like Ctrl-C: unwinds through ``finally`` blocks, which stop the servers."""
    signal.signal(signal.SIGTERM, _on_signal)


def cpu_split(pin: bool) -> tuple[list[int] | None, list[int] | None, str]:
    """(server CPUs, load-generator CPUs, description); no pinning where it cannot be done."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin:
        return None, None, f"not pinned ({len(cpus)} CPUs shared by server and load generator)"
    if len(cpus) < 2 or shutil.which("taskset") is None:
        why = "fewer than 2 CPUs" if len(cpus) < 2 else "no taskset"
        return None, None, f"not pinned ({why}; {len(cpus)} CPUs shared)"
    load, server = cpus[-1:], cpus[:-1]
    return server, load, f"server on CPU {_fmt(server)}, load generator on CPU {_fmt(load)}"


def _fmt(cpus: Sequence[int]) -> str:
    return ",".join(str(c) for c in cpus)


def pinned(argv: Sequence[str], cpus: Sequence[int] | None) -> list[str]:
    """``argv`` prefixed with ``taskset`` so every thread and child inherits the CPU set."""
    return ["taskset", "-c", _fmt(cpus), *argv] if cpus else list(argv)


def start(
    argv: Sequence[str], log: Path, env: dict[str, str], cwd: Path, cpus: Sequence[int] | None = None
) -> subprocess.Popen[bytes]:
    """Start a server in its own session, output to ``log``; registered for cleanup."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            pinned(argv, cpus),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    _LIVE[proc.pid] = proc
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM the process group we created, then SIGKILL it past ``timeout``; then any descendant
    that had moved to a session of its own (BentoML's workers do) and outlived its parent."""
    descendants = tree(proc.pid)[1:] if proc.poll() is None else []
    try:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        # Children left behind in the group (none expected) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in descendants:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    finally:
        _LIVE.pop(proc.pid, None)


def run_bounded(
    argv: Sequence[str], timeout: float, env: dict[str, str] | None = None, cpus: Sequence[int] | None = None
) -> tuple[int, str, str, float]:
    """Run a load generator to completion within ``timeout``; (rc, stdout, stderr, its CPU seconds)."""
    proc = subprocess.Popen(
        pinned(argv, cpus),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    _LIVE[proc.pid] = proc
    try:
        # communicate() reaps the child, so its CPU time is this RUSAGE_CHILDREN delta
        # (the servers, still running, are not reaped meanwhile).
        before = _children_cpu()
        out, err = proc.communicate(timeout=timeout)
        cpu = _children_cpu() - before
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"), cpu
    except BaseException:  # timeout, Ctrl-C: the load generator never outlives the harness
        stop(proc, timeout=2)
        raise
    finally:
        _LIVE.pop(proc.pid, None)


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError):
                    children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                    todo.extend(int(c) for c in children)
    return pids


def _status_kib(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def peak_rss_bytes(pid: int) -> int:
    """Sum of VmHWM (peak resident set) over the process and its descendants."""
    return sum(_status_kib(p, "VmHWM") for p in tree(pid)) * 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process and its live descendants."""
    total = 0
    for p in tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all processes used since boot, plus time stolen by the hypervisor (``/proc/stat``).

    Interrupt and softirq time are left out: loopback TCP processing for the benchmark's own
    traffic lands there, charged to no process, and would read as other tenants' load.
    """
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + steal) / CLOCK_TICKS


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Hold back what C++ libraries print on file descriptor 2 (TensorFlow's start-up notices);
    replay it if the block fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def wait_for(
    check: Callable[[], bool], timeout: float, proc: subprocess.Popen[bytes], log: Path, what: str
) -> None:
    """Poll ``check()`` until it returns True; fail early if the server died."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail(log)}")
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s (last error: {last!r}):\n{tail(log)}")


def tail(log: Path, chars: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return log.read_text(errors="replace")[-chars:]
    return ""
