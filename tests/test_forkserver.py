"""Issue 16: under `hivelm run`, stages fork from a warm server (hivelm/forkserver.py) instead of importing
torch & co. afresh. Its results must equal a fresh process's, and it must not change what signals do: a
stopped pipeline or a killed stage client leaves no process behind and ends the stage's run KILLED."""

import json
import signal
import subprocess

import pytest

from conftest import BIN, copy_pipeline, run
from test_faults import HIVELM, gone, runs, started, training, tune_forever, wait_for

pytestmark = pytest.mark.integration


def test_stages_forked_from_the_server_write_what_fresh_processes_write(keto_pipeline, tmp_path):
    """The session's keto pipeline ran under `hivelm run` (so through the server); the model stages (every one
    that seeds, samples or trains) rerun here as fresh processes, outside DVC, must write the same bytes:
    `dvc status` then finds every output as dvc.lock recorded it."""
    repo = copy_pipeline(keto_pipeline[0], tmp_path / "repo")
    for stage in ("tune", "generate", "survey"):
        run([str(BIN / "hivelm"), "-q", stage, "--community", "keto"], repo)
    run([str(BIN / "hivelm"), "-q", "attribute"], repo)
    status = json.loads(run([str(BIN / "dvc"), "status", "--json"], repo).stdout)
    assert status == {}, status


def test_sigterm_to_hivelm_run_ends_a_forked_stage_and_the_server(project, tiny_model_dir):
    import psutil

    tune_forever(project, tiny_model_dir)
    with started([HIVELM, "run", "--no-check"], stderr=subprocess.PIPE) as pipeline:
        wait_for(lambda: training(project, pipeline), 180, "training to start")
        tree = psutil.Process(pipeline.pid).children(recursive=True)
        names = [" ".join(p.cmdline()) for p in tree]
        assert any("hivelm.forkserver" in name for name in names), names  # the stage forked from the server
        pipeline.send_signal(signal.SIGTERM)
        stderr = pipeline.communicate(timeout=90)[1]
    assert pipeline.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    wait_for(lambda: gone(tree), 30, "every process of the pipeline to end")
    assert [r.info.status for r in runs("tune")] == ["KILLED"]
    assert [r.info.status for r in runs("pipeline")] == ["KILLED"]


def test_a_killed_stage_client_takes_its_forked_stage_with_it(project, tiny_model_dir):
    """DVC waits for the client (`hivelm tune`, its child); SIGKILL it and the forked stage must not train on."""
    import psutil

    tune_forever(project, tiny_model_dir)
    with started([HIVELM, "run", "--no-check"], stderr=subprocess.PIPE) as pipeline:
        wait_for(lambda: training(project, pipeline), 180, "training to start")
        tree = psutil.Process(pipeline.pid).children(recursive=True)
        server = next(p for p in tree if "hivelm.forkserver" in " ".join(p.cmdline()))
        stage = server.children()
        client = [p for p in tree if p not in stage and p != server and "tune" in " ".join(p.cmdline())]
        assert len(stage) == 1 and client, [p.cmdline() for p in tree]
        client[-1].kill()
        wait_for(lambda: gone(stage), 60, "the forked stage to end")
        pipeline.communicate(timeout=90)
    assert pipeline.returncode != 0
    assert [r.info.status for r in runs("tune")] == ["KILLED"]


def test_no_server_on_an_accelerator_or_when_switched_off(monkeypatch):
    """CUDA cannot serve a process forked after it was touched: any configured device other than the CPU, or
    HIVELM_NO_FORKSERVER=1, and every stage starts fresh."""
    from hivelm import processes

    assert processes.start({}, ["cpu", "cuda", "cpu"]) is None
    monkeypatch.setenv(processes.DISABLE_ENV, "1")
    assert processes.start({}, ["cpu"]) is None


def test_the_server_serves_under_a_temp_folder_too_long_for_a_socket_path(tmp_path, monkeypatch, capfd):
    """CI failed here: under a long $TMPDIR (pytest's, a cluster job's scratch folder) the socket path passed
    AF_UNIX's 107 bytes, the server died on bind and every stage fell back to a fresh process."""
    import os
    import tempfile

    from hivelm import __version__, processes

    deep = tmp_path / ("t" * 60) / ("m" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    server, path = processes.start(dict(os.environ), ["cpu"])
    try:
        assert len(path) > 107
        wait_for(lambda: os.path.exists(path) or server.poll() is not None, 60, "the server to bind")
        monkeypatch.setenv(processes.ENV, path)
        assert processes.delegate(["--version"]) == 0
        assert __version__ in capfd.readouterr().out
        assert server.poll() is None
    finally:
        processes.stop(server, path)
    assert list(deep.iterdir()) == []  # stop removed the socket folder
