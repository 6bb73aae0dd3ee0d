"""The optional peer servers of the benchmark (bench/peers.py): how each is started and fed, the
skip when its env is missing, and a real short run of each peer whose env is installed.

The peers' envs are installed by ``bench/tools/setup --peers`` (minutes, TensorFlow in each), so
the real runs are skipped, with the reason, where an env is missing; the skip path itself runs
everywhere, on an empty cache.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from bench import peers, procs, run
from bench.load import tfs
from bench.targets import Context, Target
from tests.fixtures import ROOT

PEER_KEYS = [p.key for p in peers.PEERS]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty MODELSHIP_CACHE: no peer env installed."""
    root = tmp_path / "cache"
    monkeypatch.setenv("MODELSHIP_CACHE", str(root))
    return root


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    version_dir = tmp_path / "models" / "linear" / "1"
    version_dir.mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    return Context("linear", version_dir.parent, version_dir, work, None, work / "batching.pbtxt")


def peer_target(key: str) -> Target:
    return peers.BY_TARGET[key]


# --- targets and envs ------------------------------------------------------------------------------


def test_peers_are_not_default_targets_and_the_flag_adds_each_once() -> None:
    assert not {t.key for t in run.parse_args([]).target_list} & set(PEER_KEYS)
    with_flag = [t.key for t in run.parse_args(["--targets=seed,mlserver", "--peers"]).target_list]
    assert with_flag == ["seed", "mlserver", "kserve", "mlserver-batching", "bentoml"]
    listed = run.parse_args(["--targets=seed,modelship-rest,kserve,bentoml"]).target_list
    assert [t.key for t in listed] == ["seed", "modelship-rest", "kserve", "bentoml"]
    assert all(t.kind == peers.KIND and t.transport == "REST" for t in listed[2:])


def test_peer_envs_are_pinned_with_the_projects_tensorflow(cache: Path) -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if d.startswith("tensorflow-cpu"))  # e.g. tensorflow-cpu>=2.21,<2.22
    low = spec.split(">=")[1].split(",")[0]
    high = spec.split("<")[1]
    pinned = peers.TF_PIN.split("==")[1]

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split("."))

    assert key(low) <= key(pinned)[: len(key(low))]
    assert key(pinned)[: len(key(high))] < key(high)
    for env in peers.ENVS.values():
        assert env.pins[0] == f"{env.package}=={env.version}"
        assert peers.TF_PIN in env.pins
        assert all("==" in pin for pin in env.pins)
        assert env.path == cache / "bench" / "peers" / f"{env.name}-{env.version}"
    assert "uvloop==0.21.0" in peers.ENVS["mlserver"].pins  # SeldonIO/MLServer#2286


def test_a_peer_is_missing_until_its_install_completed(cache: Path) -> None:
    target, env = peer_target("kserve"), peers.ENVS["kserve"]
    why = peers.missing(target)
    assert why.startswith(peers.SETUP_HINT)
    assert str(env.path) in why
    env.path.mkdir(parents=True)  # a half-made env (pip failed or was interrupted)
    assert peers.missing(target)
    (env.path / peers.STAMP).write_text("kserve==0.0.1\n")  # another version's pins
    assert peers.missing(target)
    (env.path / peers.STAMP).write_text("\n".join(env.pins) + "\n")
    assert peers.missing(target) == ""
    assert peers.describe([target, peer_target("bentoml")]) == {"kserve": ", ".join(env.pins)}
    assert peers.missing(run.BY_KEY["seed"]) == ""  # not a peer: never skipped


def test_install_writes_its_stamp_only_after_every_step(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = peers.ENVS["bentoml"]
    calls: list[list[str]] = []

    def fake_run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        assert not (env.path / peers.STAMP).exists(), "stamp written before the install finished"
        if argv[1:3] == ["-m", "venv"]:
            env.path.mkdir(parents=True, exist_ok=True)
        if "install" in argv and "--upgrade" not in argv and fail[0]:
            raise subprocess.CalledProcessError(1, argv)
        return subprocess.CompletedProcess(argv, 0, stdout="bentoml==1.4.40\n", stderr="")

    monkeypatch.setattr(peers.subprocess, "run", fake_run)
    fail = [True]
    with pytest.raises(subprocess.CalledProcessError):
        peers.install(env)
    assert not env.installed()
    fail[0] = False
    peers.install(env)
    assert env.installed()
    assert calls[-2][-len(env.pins) :] == list(env.pins)  # pip install <pins>, then pip freeze
    assert (env.path / "pip-freeze.txt").read_text() == "bentoml==1.4.40\n"
    calls.clear()
    peers.install(env)
    assert calls == []  # installed: nothing run


# --- bodies and answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 4])
def test_bodies_follow_each_peers_protocol(rows: int) -> None:
    assert peers.body(peers.BY_KEY["kserve"], rows) == tfs.rest_body(rows, 3)  # V1 = TF Serving's rows
    bento = json.loads(peers.body(peers.BY_KEY["bentoml"], rows))
    assert bento == {"instances": tfs.rows(rows, 3)}  # the API's one parameter, by name
    for key in ("mlserver", "mlserver-batching"):
        (tensor,) = json.loads(peers.body(peers.BY_KEY[key], rows))["inputs"]
        assert tensor["datatype"] == "FP32"
        assert tensor["shape"] == [rows, 3]
        assert tensor["data"] == [v for row in tfs.rows(rows, 3) for v in row]


def test_predict_urls() -> None:
    assert peers.url(peers.BY_KEY["kserve"], 9, "linear") == "http://127.0.0.1:9/v1/models/linear:predict"
    assert peers.url(peers.BY_KEY["mlserver"], 9, "linear") == "http://127.0.0.1:9/v2/models/linear/infer"
    assert peers.url(peers.BY_KEY["bentoml"], 9, "linear") == "http://127.0.0.1:9/predict"


def test_answers_must_carry_one_prediction_per_row() -> None:
    kserve, mlserver, bentoml = (peers.BY_KEY[k] for k in ("kserve", "mlserver", "bentoml"))
    assert peers.answer_ok(kserve, {"predictions": [1.5, 2.5]}, 2)
    assert not peers.answer_ok(kserve, {"predictions": [1.5]}, 2)
    assert not peers.answer_ok(kserve, {"error": "boom"}, 1)
    v2 = {"outputs": [{"name": "predictions", "shape": [2, 1], "datatype": "FP32", "data": [1.0, 2.0]}]}
    assert peers.answer_ok(mlserver, v2, 2)
    assert not peers.answer_ok(mlserver, v2, 3)
    assert not peers.answer_ok(mlserver, {"outputs": []}, 1)
    assert not peers.answer_ok(mlserver, [1.0], 1)
    assert peers.answer_ok(bentoml, [[1.0], [2.0]], 2)
    assert not peers.answer_ok(bentoml, {"predictions": [1.0]}, 1)


# --- commands --------------------------------------------------------------------------------------


def defined_in(module: str, name: str) -> bool:
    """True when ``bench/servers/peers/<module>.py`` (a dotted path under the root) defines ``name``."""
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
    return any(isinstance(n, ast.ClassDef) and n.name == name for n in tree.body)


def test_kserve_command(ctx: Context, cache: Path) -> None:
    argv, env = peers.command(peers.BY_KEY["kserve"], ctx, 8123)
    assert argv[:3] == [str(peers.ENVS["kserve"].bin("python")), "-m", "bench.servers.peers.kserve_server"]
    assert (ROOT / "bench/servers/peers/kserve_server.py").is_file()
    assert f"--model_dir={ctx.version_dir}" in argv
    assert "--model_name=linear" in argv
    assert "--host=127.0.0.1" in argv
    assert "--http_port=8123" in argv
    assert "--workers=1" in argv
    assert "--enable_grpc=false" in argv
    assert env["PYTHONPATH"] == str(ROOT)


@pytest.mark.parametrize("key", ["mlserver", "mlserver-batching"])
def test_mlserver_command_and_repository(ctx: Context, cache: Path, key: str) -> None:
    peer = peers.BY_KEY[key]
    argv, env = peers.command(peer, ctx, 8124)
    assert argv[:2] == [str(peers.ENVS["mlserver"].bin("mlserver")), "start"]
    repo = Path(argv[2])
    settings = json.loads((repo / "settings.json").read_text())
    assert settings["host"] == "127.0.0.1"
    assert settings["http_port"] == 8124
    assert len({settings["http_port"], settings["grpc_port"], settings["metrics_port"]}) == 3
    assert settings["parallel_workers"] == 0
    model = json.loads((repo / "linear" / "model-settings.json").read_text())
    assert model["name"] == "linear"
    assert model["parameters"]["uri"] == str(ctx.version_dir)
    module, _, cls = model["implementation"].rpartition(".")
    assert defined_in(module, cls)
    if peer.batching:
        assert model["max_batch_size"] > 1
        assert model["max_batch_time"] > 0
    else:
        assert "max_batch_size" not in model
        assert "max_batch_time" not in model
    assert env["PYTHONPATH"] == str(ROOT)


def test_bentoml_command(ctx: Context, cache: Path) -> None:
    argv, env = peers.command(peers.BY_KEY["bentoml"], ctx, 8125)
    assert argv[:2] == [str(peers.ENVS["bentoml"].bin("bentoml")), "serve"]
    module, _, cls = argv[2].partition(":")
    assert defined_in(module, cls)
    assert "--host=127.0.0.1" in argv
    assert "--port=8125" in argv
    assert f"--working-dir={ROOT}" in argv
    assert env["BENCH_PEER_MODEL_DIR"] == str(ctx.version_dir)
    assert env["BENTOML_DO_NOT_TRACK"] == "True"
    assert Path(env["BENTOML_HOME"]).is_relative_to(ctx.work)
    assert env["PYTHONPATH"] == str(ROOT)


# --- processes -------------------------------------------------------------------------------------


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_stop_kills_a_descendant_in_its_own_session(tmp_path: Path) -> None:
    """Like BentoML's worker: a child in a session of its own, left running when its parent exits."""
    child_pid = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
        "start_new_session=True)\n"
        f"open({str(child_pid)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    proc = procs.start([sys.executable, "-c", script], tmp_path / "log", dict(os.environ), tmp_path)
    deadline = time.monotonic() + 20
    while not child_pid.exists() or not child_pid.read_text():
        assert time.monotonic() < deadline, procs.tail(tmp_path / "log")
        time.sleep(0.05)
    pid = int(child_pid.read_text())
    try:
        procs.stop(proc)
        time.sleep(0.2)
        assert not alive(pid)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def harness(model_base: Path, out: Path, targets: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.run",
        f"--targets={targets}",
        "--connections=1",
        "--duration=1",
        "--warmup=0",
        "--no-plot",
        f"--model-base-path={model_base / 'linear'}",
        f"--out-dir={out}",
    ]


@pytest.mark.slow
def test_missing_peer_is_skipped_with_a_note_and_the_run_succeeds(
    tmp_path: Path, model_base: Path, cache: Path
) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        harness(model_base, out, "bare-asgi,kserve"),
        cwd=ROOT,
        env=os.environ.copy(),  # MODELSHIP_CACHE: the empty cache
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped kserve: run bench/tools/setup --peers" in proc.stderr
    assert "skipped kserve: run bench/tools/setup --peers" in proc.stdout
    row = next(ln for ln in proc.stdout.splitlines() if ln.startswith("KServe ModelServer"))
    assert row.split()[-1] == "skipped"
    assert "[ 1/1] bare ASGI" in proc.stderr  # the skipped target is not counted as a point
    data = json.loads((out / "latest.json").read_text())
    points = {p["target"]: p for p in data["points"]}
    assert points["kserve"]["skipped"].startswith(peers.SETUP_HINT)
    assert points["kserve"]["failure"] == ""
    assert points["kserve"]["rps"] == 0
    assert points["bare-asgi"]["ok"] > 0
    assert data["meta"]["peers"] == {}
    assert "Skipped:" in (out / "latest.md").read_text()


def peer_processes(env: peers.PeerEnv) -> list[str]:
    """Command lines of live processes run from ``env``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(env.path) in cmdline:
                found.append(cmdline)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("key", PEER_KEYS)
def test_real_peer_run(tmp_path: Path, model_base: Path, key: str) -> None:
    target = peer_target(key)
    env = peers.ENVS[peers.BY_KEY[key].env]
    if peers.missing(target):
        pytest.skip(f"{key}: {peers.missing(target)}")
    out = tmp_path / "results"
    proc = subprocess.run(
        harness(model_base, out, key), cwd=ROOT, capture_output=True, text=True, timeout=400
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (point,) = json.loads((out / "latest.json").read_text())["points"]
    assert point["target"] == key
    assert point["ok"] > 0, point
    assert point["error_count"] == 0, point
    assert point["skipped"] == ""
    assert point["failure"] == ""
    assert point["peak_rss_mib"] > 0
    assert point["server_cpu"] > 0
    assert peer_processes(env) == []
