"""Issue 12: file modes, concurrent use of one workspace, an unusable tracking store, and signals.

Each test starts the real processes with tiny inputs and asserts what a user sees: exit code, one line
naming the culprit, no traceback, no process left behind, the MLflow run's final status.
"""

import os
import socket
import stat
import subprocess
import sys
import time

import pytest

from conftest import BIN
from hivelm.io import atomic_dir, write_json

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
from hivelm.io import atomic_dir
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


def test_two_processes_creating_one_fresh_store_both_succeed(tmp_path):
    db = tmp_path / "mlflow.db"
    code = f"from hivelm.tracking import ensure_store; ensure_store('sqlite:///{db}')"
    openers = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [p.communicate(timeout=120)[1] for p in openers]
    assert [p.returncode for p in openers] == [0, 0], errors[0][-2000:] + errors[1][-2000:]
    from mlflow.tracking import MlflowClient

    assert MlflowClient(f"sqlite:///{db}").search_experiments()  # migrated completely, usable


@pytest.mark.parametrize("command", [["prepare"], ["run"]])
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


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only files")
def test_a_read_only_store_is_named_in_one_line(project):
    (project / "mlflow.db").chmod(0o444)
    result = subprocess.run([HIVELM, "prepare"], env=env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and f"{project / 'mlflow.db'}: the MLflow store is read-only" in result.stderr
    assert "Traceback" not in result.stderr
