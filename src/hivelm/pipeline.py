"""`hivelm run`: the whole pipeline through `dvc repro`, under one parent MLflow run."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from hivelm import tracking
from hivelm.config import HiveConfig
from hivelm.errors import HiveError

log = logging.getLogger(__name__)


def run(cfg: HiveConfig, dvc_args: list[str], name: str | None = None) -> int:
    """Create the tracking store and the parent run, then let DVC run every stage that is out of date.

    Each stage process attaches its own child run to the parent through HIVELM_PARENT_RUN_ID.
    """
    dvc_args = [a for a in dvc_args if a != "--"]
    bin_dir = str(Path(sys.executable).parent)
    with tracking.pipeline_run(cfg, name) as parent_id:
        env = dict(os.environ, **{tracking.PARENT_ENV: parent_id, "MLFLOW_TRACKING_URI": tracking.tracking_uri()})
        # Stage commands are `hivelm ...`: make sure they resolve to this interpreter's install.
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
        log.info("pipeline run %s: dvc repro %s", parent_id, " ".join(dvc_args))
        code = subprocess.call([os.path.join(bin_dir, "dvc"), "repro", *dvc_args], env=env)
        if code != 0:
            raise HiveError(f"dvc repro failed with exit code {code} (see the stage output above)")
    return 0
