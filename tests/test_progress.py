"""Progress where there is no terminal (issue 23.5): logged lines with rate and ETA, tune's records as lines."""

import logging

import pytest

from hivelm.errors import HiveError
from hivelm.progress import LoggedProgress, every_s, progress_bar, training_line


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_without_a_terminal_a_long_loop_logs_a_line_every_n_seconds_with_rate_and_eta(caplog):
    clock = Clock()
    advance = LoggedProgress(100, "generate keto", "it", every=30.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="hivelm.progress"):
        for _ in range(50):
            clock.now += 1.0  # one item a second: a line at 30 s, none before
            advance(1)
        advance.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["generate keto: 30/100 it (30%), 1.00it/s, ETA 01:10",
                     "generate keto: 50/100 it (50%), 1.00it/s, ETA 00:50 (done)"]


def test_the_interval_comes_from_the_environment_and_is_validated(monkeypatch, caplog):
    monkeypatch.delenv("HIVELM_PROGRESS_EVERY_S", raising=False)
    assert every_s() == 30.0
    monkeypatch.setenv("HIVELM_PROGRESS_EVERY_S", "0.000001")
    with caplog.at_level(logging.INFO, logger="hivelm.progress"), progress_bar(None, "survey keto", "prompt") as step:
        step(3)  # pytest's captured stderr is no terminal
    assert caplog.records[0].getMessage().startswith("survey keto: 3 prompt, ")
    for bad in ("0", "soon", "nan"):
        monkeypatch.setenv("HIVELM_PROGRESS_EVERY_S", bad)
        with pytest.raises(HiveError, match="HIVELM_PROGRESS_EVERY_S"):
            every_s()


def test_a_training_record_is_one_rounded_line():
    record = {"loss": 2.345678912345, "grad_norm": 0.53333333333, "learning_rate": 0.00012345678, "epoch": 0.3,
              "num_input_tokens_seen": 1024}
    assert training_line(record, 12, 40) == ("step 12/40  loss 2.3457  grad_norm 0.53333  learning_rate 0.00012346  "
                                              "epoch 0.3  num_input_tokens_seen 1024")



def test_the_quickstart_offers_the_ci_sized_run_before_the_demo(tmp_path):
    """Issue 23.8: a first result in minutes. README's Quickstart runs `make quick` before `make repro`; the
    target runs configs/ci/params.yaml in a scratch copy of HEAD (CI runs the same target)."""
    import re
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    quickstart = (root / "README.md").read_text(encoding="utf-8").split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(make \S+)", quickstart, flags=re.M)
    assert commands.index("make quick") < commands.index("make repro")
    dry = subprocess.run(["make", "-n", "quick", f"QUICK={tmp_path}", "VENV=/nonexistent"], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    assert f"cp configs/ci/params.yaml {tmp_path}/params.yaml" in dry
    assert re.search(rf"cd {tmp_path} && \S+/hivelm +run", dry) and not any(tmp_path.iterdir())  # dry: nothing run
    assert "make test" in (root / ".ci/run").read_text(encoding="utf-8")  # whose gate test runs `make quick`
    assert '"quick"' in (root / "tests/test_ci_gate.py").read_text(encoding="utf-8")
