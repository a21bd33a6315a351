"""Issue 12: file modes, concurrent use of one workspace, an unusable tracking store, and signals.

Each test starts the real processes with tiny inputs and asserts what a user sees: exit code, one line
naming the culprit, no traceback, no process left behind, the MLflow run's final status.
"""

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from conftest import BIN, REPO
from hivelm.artifacts import atomic_dir, write_json

HIVELM = str(BIN / "hivelm")


def env(**extra) -> dict:
    """The test's environment (the project's MLflow store) with the venv's scripts first on PATH."""
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again on exit: nothing listens there


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def test_atomic_writes_honour_the_umask(tmp_path, umask):
    for mask, file_mode, dir_mode in ((0o022, 0o644, 0o755), (0o027, 0o640, 0o750)):
        umask(mask)
        write_json(tmp_path / f"{mask}.json", {"a": 1})
        with atomic_dir(tmp_path / f"out{mask}") as tmp:
            (tmp / "x.txt").write_text("x")
        assert stat.S_IMODE((tmp_path / f"{mask}.json").stat().st_mode) == file_mode
        assert stat.S_IMODE((tmp_path / f"out{mask}").stat().st_mode) == dir_mode


SWAPPER = """
import sys
from pathlib import Path
from hivelm.artifacts import atomic_dir
for _ in range(100):
    with atomic_dir(Path(sys.argv[1])) as tmp:
        for i in range(20):  # enough files that each swap's cleanup overlaps the other writer's swap
            (tmp / f"{i}.txt").write_text(sys.argv[2])
"""


def test_concurrent_swaps_of_one_output_neither_fail_nor_leave_debris(tmp_path):
    out = tmp_path / "prepared"
    writers = [subprocess.Popen([sys.executable, "-c", SWAPPER, str(out), name], stderr=subprocess.PIPE, text=True)
               for name in ("a", "b")]
    errors = [w.communicate(timeout=120)[1] for w in writers]
    assert [w.returncode for w in writers] == [0, 0], errors
    assert {(out / f"{i}.txt").read_text() for i in range(20)} in ({"a"}, {"b"})  # one writer's whole output
    assert sorted(p.name for p in tmp_path.iterdir()) == [".prepared.lock", "prepared"]


@pytest.mark.heavy  # MLflow
def test_two_processes_creating_one_fresh_store_both_succeed(tmp_path):
    db = tmp_path / "mlflow.db"
    code = f"from hivelm.tracking import ensure_store; ensure_store('sqlite:///{db}')"
    openers = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [p.communicate(timeout=120)[1] for p in openers]
    assert [p.returncode for p in openers] == [0, 0], errors[0][-2000:] + errors[1][-2000:]
    from mlflow.tracking import MlflowClient

    assert MlflowClient(f"sqlite:///{db}").search_experiments()  # migrated completely, usable


@pytest.mark.parametrize("command", [["prepare"], ["run", "--no-check"]])  # no posts here: the tracker is the point
def test_an_unreachable_tracking_server_fails_fast_naming_the_uri(project, command):
    uri = f"http://127.0.0.1:{closed_port()}"
    started = time.monotonic()
    result = subprocess.run([HIVELM, *command], env=env(MLFLOW_TRACKING_URI=uri), capture_output=True, text=True,
                            timeout=120)
    assert time.monotonic() - started < 15
    assert result.returncode == 2, result.stderr
    assert uri in result.stderr and "unreachable" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "data" / "prepared").exists()


def test_a_corrupt_store_is_named_in_one_line(project):
    (project / "mlflow.db").write_bytes(b"this is not an sqlite file\n" * 100)
    result = subprocess.run([HIVELM, "prepare"], env=env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"{project / 'mlflow.db'}: cannot open as an MLflow sqlite store" in result.stderr
    assert "Traceback" not in result.stderr


def without_root_file_access() -> list[str]:
    """A command prefix under which permission bits bind root too (CI and containers run as root): util-linux's
    setpriv drops the capabilities that let root write a read-only file."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root and util-linux's setpriv is missing: root writes to read-only files")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-all", "--"]


def test_a_read_only_store_is_named_in_one_line(project):
    (project / "mlflow.db").chmod(0o444)
    result = subprocess.run([*without_root_file_access(), HIVELM, "prepare"], env=env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and f"{project / 'mlflow.db'}: the MLflow store is read-only" in result.stderr
    assert "Traceback" not in result.stderr


def gone(processes) -> bool:
    import psutil

    def dead(process):
        try:
            return process.status() == psutil.STATUS_ZOMBIE  # exited, waiting for init to reap it
        except psutil.NoSuchProcess:
            return True

    return all(dead(p) for p in processes)


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


@contextmanager
def started(cmd: list[str], **kwargs) -> Iterator[subprocess.Popen]:
    """Popen that never outlives a failing test: it gets the SIGTERM the test meant to send."""
    process = subprocess.Popen(cmd, **{"env": env(), "text": True, **kwargs})
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(60)


def runs(stage: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, f"tags.stage = '{stage}'")


def test_sigterm_to_a_stage_ends_its_run_killed_and_frees_its_checkpoint_folder(project, tiny_model_dir):
    import shutil

    from hivelm.artifacts import file_lock, lock_beside, write_jsonl
    from test_tune import demonstrations

    shutil.copytree(tiny_model_dir, project / "models/base")
    write_jsonl(project / "data/instructions/keto.jsonl", demonstrations())
    with started([HIVELM, "tune", "--community", "keto", "tune.max_steps=100000", "tune.eval_steps=1000",
                  "tune.max_length=64"], stderr=subprocess.PIPE) as stage:
        wait_for(lambda: training(project, stage), 180, "training to start")
        time.sleep(2)
        stage.send_signal(signal.SIGTERM)
        stderr = stage.communicate(timeout=60)[1]
    assert stage.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "interrupted (SIGTERM)" in stderr and "Traceback" not in stderr
    assert [r.info.status for r in runs("tune")] == ["KILLED"]
    with file_lock(lock_beside(project / "models/checkpoints/keto"), "a rerun", timeout=0):
        pass  # a rerun may train again


def tune_forever(project, tiny_model_dir) -> None:
    """A one-stage DVC project in `project` (the cwd) whose stage trains keto's adapter for 100,000 steps."""
    import shutil

    from hivelm.artifacts import write_jsonl
    from test_tune import demonstrations

    shutil.copytree(tiny_model_dir, project / "models/base")
    write_jsonl(project / "data/instructions/keto.jsonl", demonstrations())
    (project / "dvc.yaml").write_text("stages:\n  tune:\n    cmd: hivelm tune --community keto tune.max_steps=100000 "
                                      "tune.eval_steps=1000 tune.max_length=64\n")
    (project / ".dvc").mkdir()
    (project / ".dvc/config").write_text("[core]\n    analytics = false\n")
    subprocess.run(["git", "init", "-q"], check=True)


def training(project, process) -> bool:
    """The trainer has started (its checkpoint folder is fingerprinted), or `process` ended before it did."""
    return (project / "models/checkpoints/keto/fingerprint.txt").exists() or process.poll() is not None


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_killing_dvc_repro_ends_its_stage_too(project, tiny_model_dir, shell):
    """`dvc repro` runs a stage through `$SHELL -c`; killed, it used to leave the trainer running as an orphan.
    bash execs the stage, dash (/bin/sh here, and $SHELL is unset under make and most CI) stays its parent."""
    import psutil

    tune_forever(project, tiny_model_dir)
    with started([str(BIN / "dvc"), "repro"], stderr=subprocess.PIPE, env=env(SHELL=shell)) as repro:
        wait_for(lambda: training(project, repro), 180, "training to start")
        tree = psutil.Process(repro.pid).children(recursive=True)
        assert tree, "the stage runs as dvc's child"
        repro.kill()  # SIGKILL: DVC gets no chance to clean up after itself
        repro.wait(30)
        wait_for(lambda: gone(tree), 60, "the orphaned stage to end")
    from hivelm import tracking

    # The stage ends its own run KILLED on SIGTERM; on a loaded machine it may be gone before it could, and
    # then the next process to open the store does (issue 31.3): either way no run stays RUNNING.
    tracking.end_runs_of_dead_processes.cache_clear()
    tracking.ensure_store(os.environ["MLFLOW_TRACKING_URI"])
    assert [r.info.status for r in runs("tune")] == ["KILLED"]


SLEEPER = """
import os, time
open("stage.pid", "w").write(str(os.getpid()))
try:
    time.sleep(600)
except KeyboardInterrupt:
    open("stage.interrupted", "w").close()
    raise
"""


def sleeper_project(project) -> None:
    """A one-stage DVC project in `project` whose stage sleeps (and notes whether it was interrupted)."""
    (project / "sleeper.py").write_text(SLEEPER)
    (project / "dvc.yaml").write_text(f"stages:\n  sleep:\n    cmd: {sys.executable} sleeper.py\n")
    (project / ".dvc").mkdir()
    (project / ".dvc/config").write_text("[core]\n    analytics = false\n")
    subprocess.run(["git", "init", "-q"], check=True)


# The README's sentence: Ctrl-C rules hold for `hivelm run &` in a script, whose SIGINT the shell ignores.
# The script interrupts it once the test has seen the stage; one not stopped 30 s later gets SIGTERM instead.
BACKGROUND_RUN = """hivelm run --no-check & pid=$!
while [ ! -e interrupt ] && kill -0 $pid 2>/dev/null; do sleep 0.2; done
kill -INT $pid
for i in $(seq 150); do kill -0 $pid 2>/dev/null || break; sleep 0.2; done
kill -TERM $pid 2>/dev/null
wait $pid
"""


@pytest.mark.parametrize("how", ["SIGTERM", "kill -INT in a script"])
def test_a_signal_to_hivelm_run_stops_dvc_and_its_stage_and_ends_the_parent_run_killed(project, how):
    import psutil

    sleeper_project(project)
    command = [HIVELM, "run", "--no-check"] if how == "SIGTERM" else ["bash", "-c", BACKGROUND_RUN]
    with started(command, stderr=subprocess.PIPE) as pipeline:
        wait_for(lambda: (project / "stage.pid").exists() or pipeline.poll() is not None, 120, "the stage to start")
        tree = psutil.Process(pipeline.pid).children(recursive=True)
        assert int((project / "stage.pid").read_text()) in {p.pid for p in tree}
        if how == "SIGTERM":
            pipeline.send_signal(signal.SIGTERM)
        else:
            (project / "interrupt").touch()
        stderr = pipeline.communicate(timeout=90)[1]
    signum = signal.SIGTERM if how == "SIGTERM" else signal.SIGINT
    assert pipeline.returncode == 128 + signum, stderr[-3000:]  # the shell's code for the signal
    assert f"hivelm run: interrupted ({signum.name})" in stderr
    assert gone(tree), [p for p in tree if not gone([p])]
    assert (project / "stage.interrupted").exists(), "the stage was killed, not interrupted: no chance to clean up"
    assert [r.info.status for r in runs("pipeline")] == ["KILLED"]


def test_sigterm_to_hivelm_ui_stops_its_server(project):
    import psutil

    port = closed_port()
    with started([HIVELM, "ui", "--port", str(port)], stdout=subprocess.PIPE) as ui:
        assert any(line.startswith("MLflow UI: http://127.0.0.1") for line in ui.stdout)  # once it is healthy
        tree = psutil.Process(ui.pid).children(recursive=True)
        ui.send_signal(signal.SIGTERM)
        ui.wait(30)
    assert ui.returncode == 128 + signal.SIGTERM  # what the README promises (it exited 0)
    assert gone(tree) and tree
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more


def test_hivelm_ui_refuses_a_taken_port_and_warns_about_a_public_host(project):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([HIVELM, "ui", "--host", "0.0.0.0", "--port", str(port)], env=env(),
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--host 0.0.0.0 serves the MLflow UI and its API without authentication" in result.stderr
    assert f"port {port} on 0.0.0.0 is already in use" in result.stderr


STAGE_WRITER = """
import os, sys, time
from pathlib import Path
import hivelm.artifacts as hio
posts, stats, tag, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
real, calls, lock = os.replace, [0], hio.file_lock
def replace(src, dst):  # the process killed before its kill_at-th rename
    calls[0] += 1
    if calls[0] == kill_at:
        os._exit(9)
    real(src, dst)
def file_lock(*args, **kwargs):  # or delayed before taking its first output lock
    if kill_at < 0 and not Path(sys.argv[1]).with_name("paused").exists():
        Path(sys.argv[1]).with_name("paused").touch()
        time.sleep(1.5)
    return lock(*args, **kwargs)
hio.os.replace, hio.file_lock = replace, file_lock
if True:
    with hio.staged_outputs() as out:  # prepare's layout: a folder of posts and a stats file elsewhere
        out.dir(posts)
        for community in ("keto", "running"):
            out.path(posts / community / "train.jsonl").parent.mkdir()
            out.path(posts / community / "train.jsonl").write_text(tag)
        out.path(stats).write_text(tag)
"""


def stage_writer(posts, stats, tag, kill_at=0) -> subprocess.Popen:
    """A stage writing `tag` into prepare's outputs; killed before its kill_at-th rename, or (-1) pausing
    1.5 s before it takes its first lock, with a file `paused` beside the posts saying so."""
    return subprocess.Popen([sys.executable, "-c", STAGE_WRITER, str(posts), str(stats), tag, str(kill_at)],
                            stderr=subprocess.PIPE, text=True)


def written_set(posts, stats) -> set[str]:
    return {stats.read_text(), *((posts / c / "train.jsonl").read_text() for c in ("keto", "running"))}


def test_concurrent_prepares_end_with_one_writers_posts_and_stats(tmp_path):
    """Two prepares with different settings at once used to exit 0 leaving stats of one and posts of the other."""
    posts, stats = tmp_path / "data/prepared", tmp_path / "reports/prepare/stats.json"
    slow = stage_writer(posts, stats, "a", kill_at=-1)
    wait_for(lambda: (posts.parent / "paused").exists() or slow.poll() is not None, 60, "the first swap to begin")
    fast = stage_writer(posts, stats, "b")  # the whole of its write falls inside the other's swap
    errors = [w.communicate(timeout=60)[1] for w in (slow, fast)]
    assert [slow.returncode, fast.returncode] == [0, 0], errors
    assert written_set(posts, stats) in ({"a"}, {"b"})
    assert sorted(p.name for p in posts.parent.iterdir()) == [".prepared.lock", "paused", "prepared"]


@pytest.mark.parametrize("kill_at", range(1, 5))  # before each of the 4 renames (2 per output)
def test_a_writer_killed_between_its_renames_leaves_the_previous_set(tmp_path, kill_at):
    from hivelm.artifacts import recover, staged_outputs, sweep_stale

    posts, stats = tmp_path / "data/prepared", tmp_path / "reports/prepare/stats.json"
    assert stage_writer(posts, stats, "old").wait(60) == 0
    killed = stage_writer(posts, stats, "new", kill_at=kill_at)
    assert killed.wait(60) == -9 or killed.returncode == 9
    recover([posts, stats])  # what the next stage to read or write them does first
    assert written_set(posts, stats) == {"old"}
    sweep_stale([posts, stats])
    assert sorted(p.name for p in posts.parent.iterdir()) == [".prepared.lock", "prepared"]
    assert sorted(p.name for p in stats.parent.iterdir()) == [".stats.json.lock", "stats.json"]
    with staged_outputs() as out:  # and the next swap goes through
        out.dir(posts)
        out.path(stats).write_text("next")
    assert stats.read_text() == "next" and not (posts / "keto").exists()


def test_temporary_copies_of_dead_writers_are_swept_and_live_ones_kept(tmp_path):
    """A killed base_model left 155 MB of `.base.*.tmp` in models/ that nothing removed."""
    from hivelm.artifacts import sweep_stale

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, live = tmp_path / f".base.{dead.pid}.x1.tmp", tmp_path / f".base.{os.getppid()}.x2.tmp"
    for folder in (stale, live, tmp_path / "base"):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"0" * 100)
    other = tmp_path / f".other.{dead.pid}.x3.tmp"  # not an output of this stage: not ours to judge
    other.touch()
    assert sweep_stale([tmp_path / "base"]) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "base", other.name])


@pytest.fixture
def broken_models(tmp_path, monkeypatch, tiny_model_dir):
    """models/base (the tiny model) and keto's adapter for it in a project cwd."""
    from hivelm.config import TuneConfig
    from hivelm.models import load_causal_lm
    from hivelm.stages.tune import add_lora

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_model_dir, "models/base")
    model, _ = load_causal_lm(tiny_model_dir)
    add_lora(model, TuneConfig()).save_pretrained("models/adapters/keto")
    return tmp_path


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_broken_model_and_report_files_are_named_with_the_stage_to_rerun(broken_models, monkeypatch):
    """Each used to be a raw traceback; a deleted models/base was taken for a hub id and tried for 55 s."""
    import json
    from pathlib import Path

    from hivelm.cli import error_line
    from hivelm.config import BaseModelConfig
    from hivelm.errors import ArtifactError
    from hivelm.models import load_causal_lm, load_with_adapter
    from hivelm.stages.summarize import collect
    from hivelm.stages.tune import fingerprint

    def refused(call, *args) -> str:
        """The line `hivelm` prints for what `call` raises."""
        with pytest.raises(ArtifactError) as raised:
            call(*args)
        return error_line(raised.value)

    base, adapter, stats = Path("models/base"), Path("models/adapters/keto"), Path("reports/prepare/stats.json")
    rerun = "rerun `hivelm run` (stage {})"
    truncate(adapter / "adapter_model.safetensors")
    assert refused(load_with_adapter, BaseModelConfig(), adapter) == \
        f"{adapter}/adapter_model.safetensors is unreadable (truncated?): " + rerun.format("tune@keto")
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps(dict(config, target_modules=["no_such_layer"])))
    (adapter / "adapter_model.safetensors").unlink()
    line = refused(load_with_adapter, BaseModelConfig(), adapter)
    assert line.startswith(f"{adapter} cannot be loaded as an adapter") and line.endswith(rerun.format("tune@keto"))
    (base / "config.json").write_text('{"architectures": ["Lla')
    assert refused(load_causal_lm, base) == f"{base}/config.json is unreadable (truncated?): " \
        + rerun.format("base_model")
    shutil.rmtree(base)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.monotonic()
    for path in (base, str(base)):  # as tune and as prepare.perplexity_model name it
        assert refused(load_causal_lm, path) == f"{base} is missing (a model): " + rerun.format("base_model")
    assert time.monotonic() - started < 1  # no hub attempt
    Path("demonstrations.jsonl").write_text("{}\n")  # tune's first read of the base model
    assert refused(fingerprint, {}, "keto", Path("demonstrations.jsonl"), base) == \
        f"{base}/config.json is missing: " + rerun.format("base_model")
    stats.parent.mkdir(parents=True)
    stats.write_text('{"total": {"train": 8')
    line = refused(collect, ["keto"], {})
    assert line.startswith(f"{stats} is unreadable (truncated? ") and line.endswith(rerun.format("prepare"))


def test_runs_left_running_by_dead_processes_end_killed_the_next_time_the_store_is_opened(project):
    """A SIGKILLed stage or `hivelm run` cannot end its own run; the next process that opens the store does,
    for runs of processes that ended on this host (a reused pid is told apart by its start time)."""
    from mlflow.tracking import MlflowClient

    from hivelm import processes, tracking

    uri = os.environ["MLFLOW_TRACKING_URI"]
    client = MlflowClient(uri)
    experiment = tracking.ensure_experiment("faults", uri)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    me = processes.identity()
    cases = {"dead": {**me, "process_pid": ended.stdout.strip()}, "reused pid": {**me, "process_start": "boot:1"},
             "alive": me, "other host": {**me, "process_host": "elsewhere", "process_pid": ended.stdout.strip()},
             "untagged": {}}
    ids = {case: client.create_run(experiment, tags=tags).info.run_id for case, tags in cases.items()}
    tracking.end_runs_of_dead_processes.cache_clear()
    tracking.ensure_store(uri)
    status = {case: client.get_run(run_id).info.status for case, run_id in ids.items()}
    assert status == {"dead": "KILLED", "reused pid": "KILLED", "alive": "RUNNING", "other host": "RUNNING",
                      "untagged": "RUNNING"}
    assert me.items() <= tracking.base_tags("prepare", None).items()  # every run records its process


def lock_versions() -> tuple[str, str, str]:
    """Three complete dvc.lock files, as DVC writes them one after another: before the run, after a stage,
    after the next stage (the committed one's first stages, with an output hash changed, then another)."""
    lines = (REPO / "dvc.lock").read_text().splitlines(keepends=True)
    stages = [i for i, line in enumerate(lines) if line.startswith("  ") and not line.startswith("   ")]
    before = "".join(lines[:stages[3]])  # its first three stages: a small file parses fast
    hashes = [line.split()[-1] for line in before.splitlines() if line.strip().startswith("md5:")]
    after = before.replace(hashes[0], "f" * 32, 1)
    return before, after, after.replace(hashes[2], "e" * 32, 1)


@pytest.mark.heavy  # DVC's lockfile schema
def test_dvc_lock_is_readable_after_an_interrupt_at_any_point_of_its_write(tmp_path, monkeypatch):
    """Issue 31: DVC rewrites dvc.lock in place after each stage; an interrupt inside the write left it
    truncated or empty, and DVC refused it from then on. Interrupted at every 1/30 of the write, `hivelm run`'s
    guard leaves a readable dvc.lock: the last version DVC completed, or the cut one where DVC reads it."""
    from hivelm import dvclock

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".dvc").mkdir()
    before, after, later = lock_versions()
    lock = tmp_path / "dvc.lock"
    restored = 0
    for cut in sorted({0, 1, 2, *range(0, len(later), len(later) // 30)}):
        lock.write_text(before)
        guard = dvclock.LockGuard()
        guard.start()
        lock.write_text(after)  # a stage ended, and DVC recorded it
        guard.poll()
        guard.poll()  # unchanged for a poll interval: complete, kept
        lock.write_text(later[:cut])  # the next stage's record, interrupted after `cut` characters
        cut_readable = dvclock.readable(lock)
        guard.finish()
        assert dvclock.readable(lock), cut
        assert lock.read_text() == (later[:cut] if cut_readable else after), cut
        restored += not cut_readable
    assert restored >= 5  # many cuts leave YAML that DVC refuses (an empty file among them)

    lock.write_text("")  # a run killed outright while DVC wrote: the next run puts the copy back
    dvclock.LockGuard().start()
    assert lock.read_text() == after
    lock.unlink()  # a first run (no dvc.lock before it) interrupted while DVC wrote its first one
    guard = dvclock.LockGuard()
    guard.start()
    lock.write_text("")
    guard.finish()
    assert not lock.exists()


def cmdline(process) -> list[str]:
    """A process's argv, or [] for one that ended (or is a zombie) while the test looked: short-lived
    children come and go under a loaded machine."""
    import psutil

    try:
        return process.cmdline()
    except psutil.Error:
        return []


def test_sigkill_of_hivelm_run_ends_dvc_and_the_stage_server(project, tmp_path, monkeypatch):
    """Issue 31: a SIGKILLed `hivelm run` left DVC running the rest of the pipeline, the stage server (~640 MB)
    alive for good, its parent run RUNNING and the server's socket folder behind. DVC and the server now end
    with it (its stages end with DVC: test_killing_dvc_repro_ends_its_stage_too); the next run sweeps the
    rest."""
    import tempfile

    import psutil

    from hivelm import processes, tracking

    sleeper_project(project)
    temp = tmp_path / "tmp"
    temp.mkdir()
    with started([HIVELM, "run", "--no-check"], env=env(TMPDIR=str(temp))) as pipeline:
        wait_for(lambda: (project / "stage.pid").exists() or pipeline.poll() is not None, 120, "the stage to start")
        stage = int((project / "stage.pid").read_text())
        def running_helpers() -> list:  # DVC and the server; not a short-lived `dvc` child already a zombie
            try:
                return [p for p in psutil.Process(pipeline.pid).children(recursive=True)
                        if {"repro", "hivelm.forkserver"} & set(cmdline(p)) and p.status() != psutil.STATUS_ZOMBIE]
            except psutil.Error:  # one ended while we looked: look again
                return []

        wait_for(lambda: len(running_helpers()) == 2 or pipeline.poll() is not None, 30, "DVC and the server")
        helpers = running_helpers()
        pipeline.kill()
        pipeline.wait(30)
    try:
        assert len(helpers) == 2, helpers  # DVC and the server
        wait_for(lambda: gone(helpers), 30, "DVC and the stage server to end")
    finally:
        os.kill(stage, signal.SIGKILL)  # a plain script, not a hivelm stage: nothing else ends it
    assert list(temp.glob(f"{processes.TEMP_PREFIX}*"))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    processes.sweep()
    assert not list(temp.iterdir())
    assert tracking.end_runs_of_dead_processes(os.environ["MLFLOW_TRACKING_URI"]) == 1
    assert [r.info.status for r in runs("pipeline")] == ["KILLED"]


def test_a_signal_during_a_store_write_waits_for_the_write_then_ends_the_run_killed(project, monkeypatch):
    """An interrupt raised inside SQLite's commit once left the store locked, and ending the run KILLED failed
    ('database is locked'): writes to the store hold SIGINT/SIGTERM (processes.interrupts_held) and the
    interrupt lands after them."""
    import mlflow

    from hivelm import processes, tracking
    from hivelm.config import load_config

    write = mlflow.log_metrics

    def signalled_write(*args, **kwargs):  # SIGTERM arrives at the start of the write
        os.kill(os.getpid(), signal.SIGTERM)
        return write(*args, **kwargs)

    previous = signal.signal(signal.SIGTERM, processes.interrupt)  # the CLI's handler (cli._handle_signals)
    try:
        cfg = load_config("params.yaml")
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"), \
                tracking.stage_run(cfg, "prepare", None, lambda c: ({"x": 1}, "h")) as run:
            monkeypatch.setattr(mlflow, "log_metrics", signalled_write)
            run.log_metrics({"posts": 3})
            pytest.fail("the interrupt did not land after the write")
        assert signal.getsignal(signal.SIGTERM) is processes.interrupt  # the handler is back
    finally:
        signal.signal(signal.SIGTERM, previous)
    (ended,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert ended.info.status == "KILLED" and ended.data.metrics["posts"] == 3  # the write finished first
