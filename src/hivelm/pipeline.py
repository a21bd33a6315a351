"""`hivelm run`: the whole pipeline through `dvc repro`, under one parent MLflow run."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from hivelm import dvclock, headline, processes, tracking
from hivelm.config import HiveConfig
from hivelm.errors import HiveError

log = logging.getLogger(__name__)


def run(cfg: HiveConfig, dvc_args: list[str], name: str | None = None) -> int:
    """Create the tracking store and the parent run, then let DVC run every stage that is out of date.

    Each stage process attaches its own child run to the parent through HIVELM_PARENT_RUN_ID. DVC runs in
    its own process group: on Ctrl-C or SIGTERM the whole group is interrupted and awaited, so no stage is
    left running, and the parent run ends KILLED. Killed outright, we take DVC and the stage server with us
    (hivelm.processes). However DVC ends, dvc.lock is left readable (hivelm.dvclock). The caller has checked
    the input files the params name (`check_input_files`, `hivelm run` does so first).
    """
    dvc_args = [a for a in dvc_args if a != "--"]
    render_dvc_yaml(cfg)
    bin_dir = str(Path(sys.executable).parent)
    # A tracker that goes away mid-pipeline fails the stage that was logging (exit 2, naming the URI); the
    # parent run's closing calls then meet the same dead server: one line again, not a traceback.
    with tracking.tracking_failures(tracking.tracking_uri(), "the pipeline run"), \
            tracking.pipeline_run(cfg, name) as parent_id:
        env = dict(os.environ, **{tracking.PARENT_ENV: parent_id, "MLFLOW_TRACKING_URI": tracking.tracking_uri()})
        # Stage commands are `hivelm ...`: make sure they resolve to this interpreter's install.
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
        log.info("pipeline run %s: dvc repro %s", parent_id, " ".join(dvc_args))
        # stages fork from it instead of importing torch & co. each time
        processes.sweep()  # the socket folders of servers whose `hivelm run` was killed
        server = processes.start(env, model_devices(cfg))
        if server:
            env[processes.ENV] = server[1]
        lock = dvclock.LockGuard()
        lock.start()
        try:
            # Its own process group: a terminal's Ctrl-C reaches only us, and we stop the whole group (below).
            # Through hivelm.processes, so DVC gets SIGTERM if we are killed outright (its stages end with it).
            dvc = subprocess.Popen([sys.executable, "-m", "hivelm.processes", str(os.getpid()),
                                    os.path.join(bin_dir, "dvc"), "repro", *dvc_args], env=env, process_group=0)
            try:
                code = wait(dvc, lock)
            except KeyboardInterrupt:
                processes.stop_group(dvc)
                raise
        finally:
            lock.finish()
            if server:
                processes.stop(*server)
        if code != 0:
            raise HiveError(f"dvc repro failed with exit code {code} (see the stage output above)")
        tracking.log_skipped_stages(cfg, parent_id)
        tracking.log_parent_metrics(parent_id, {"headline": headline.counts(headline.read(cfg.communities))})
    print(closing_note(cfg), flush=True)
    return 0


def closing_note(cfg: HiveConfig) -> str:
    """The headline table (hivelm.headline, the report's opening table) and where the report is."""
    from hivelm import paths

    report = paths.REPORT.resolve() if paths.REPORT.is_file() else None
    return headline.terminal(headline.read(cfg.communities), report)


def model_devices(cfg: HiveConfig) -> list[str]:
    """Every device a stage may load a model on: the stage server is off unless all are the CPU."""
    return [cfg.base_model.device, cfg.prepare.perplexity_device, cfg.evaluate.scorers.device]


def check_input_files(cfg: HiveConfig, root: Path = Path(".")) -> None:
    """Every input file the params name exists (check.missing_input_files), or one error naming each key:
    inside DVC a missing one fails as `[Errno 2]` with an absolute path, after earlier stages ran. Runs even
    with `hivelm run --no-check`: it costs a stat per file."""
    from hivelm.check import missing_input_files

    missing = missing_input_files(cfg, root)
    if missing:
        raise HiveError(f"{len(missing)} input file(s) named in the params are missing, nothing was run: "
                        + "; ".join(missing))


def render_dvc_yaml(cfg: HiveConfig) -> None:
    """dvc.yaml follows the params (external corpus files, evaluate-only runs): re-render it when they changed
    what it should say, so `dvc repro` tracks exactly the files evaluate reads. A dvc.yaml written by hand
    (one without the render's header) is left alone."""
    from hivelm import dvcfile

    current = dvcfile.DVC_YAML.read_text(encoding="utf-8") if dvcfile.DVC_YAML.is_file() else ""
    if not current.startswith(dvcfile.HEADER):
        return
    if not dvcfile.in_source_tree():  # a project of one's own: the installed code's hashes stand in for it
        dvcfile.write_code_hashes()
    rendered = dvcfile.render(cfg)
    if current != rendered:
        dvcfile.DVC_YAML.write_text(rendered, encoding="utf-8")
        log.info("rewrote %s for the params in force (stages, external corpus files)", dvcfile.DVC_YAML)


def wait(process: subprocess.Popen, lock: dvclock.LockGuard, poll_s: float = 1.0) -> int:
    """Wait for DVC, keeping each complete version of dvc.lock it writes meanwhile."""
    while True:
        try:
            return process.wait(poll_s)
        except subprocess.TimeoutExpired:
            lock.poll()


