"""Beyond one laptop, with the real components: tuning under `accelerate launch` (DDP over gloo), a DVC remote
round trip, and an MLflow server on PostgreSQL (README, "Working as a team")."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from pathlib import Path

import pytest

from conftest import BIN

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def command_env(**extra: str) -> dict[str, str]:
    """The environment of a `hivelm` command as a user runs it: the venv's bin first, telemetry off."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", MLFLOW_DISABLE_TELEMETRY="true")
    for key in ("HIVELM_PARENT_RUN_ID", "DVC_ROOT"):
        env.pop(key, None)
    return env | extra


def run_checked(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600):
    import subprocess

    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


# --- several processes for tuning -----------------------------------------------------------------------

# Every Python process of the launch records, per rank, what it writes under models/adapters and every MLflow
# store it opens (audit hooks see the interpreter's own file, directory and sqlite events).
AUDIT_HOOK = '''
import os, sys
if os.environ.get("HIVELM_AUDIT_DIR") and "RANK" in os.environ:
    _log = open(os.path.join(os.environ["HIVELM_AUDIT_DIR"], "rank-" + os.environ["RANK"] + ".txt"), "a",
                buffering=1)

    def _hook(event, args):
        if event == "open" and isinstance(args[0], str) and "models/adapters" in args[0] \\
                and (args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
            _log.write(f"write {args[0]}\\n")
        elif event in ("os.mkdir", "os.rename") and "models/adapters" in str(args[0]):
            _log.write(f"{event} {args[0]}\\n")
        elif event == "sqlite3.connect" and "mlflow" in str(args[0]):
            _log.write(f"mlflow {args[0]}\\n")

    sys.addaudithook(_hook)
'''

POSTS = ["almond flour fat bombs", "cauliflower rice and salmon meal prep with garlic butter tonight",
         "net carbs matter more than you think", "eggs and cheese for breakfast again, the third day running, and I "
         "still love it", "zucchini noodles", "electrolytes fixed my keto flu within a day"]


def write_demonstrations(path: Path, n: int) -> None:
    """Demonstrations of different lengths, so a loss averaged per device (not per token) would show."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"d{i}", "community": "keto", "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "You belong to the keto cooking community. What would you post?"},
                {"role": "assistant", "content": POSTS[i % len(POSTS)]}]}) + "\n")


# The same global batch of 8 either way: 2 processes x 4, or 1 process x 4 x 2 accumulation steps (each
# optimizer step then sees the same 8 demonstrations: accelerate hands consecutive batches to the ranks).
# No dropout and no length grouping (its mega-batches depend on the per-step batch): the runs are comparable.
TUNE = ["tune.batch_size=4", "tune.max_steps=6", "tune.eval_steps=6", "tune.lora_dropout=0.0",
        "tune.learning_rate=0.01", "tune.group_by_length=false", "base_model.num_threads=1"]
# Max |difference| of any adapter weight. Measured 0 on this CPU: gloo's all-reduce of two gradients adds them
# as accumulation does. More ranks or another backend reorder float sums; 1e-4 is far below one update (lr).
DDP_TOLERANCE = 1e-4


def test_accelerate_launch_two_processes_matches_one(project, tiny_model_dir):
    import subprocess

    from mlflow.tracking import MlflowClient
    from safetensors.torch import load_file

    shutil.copytree(tiny_model_dir, project / "models/base")
    # 53 = 48 training demonstrations (6 full global batches) + 5 for eval (tune.eval_fraction 0.1). With a
    # partial last batch the runs would differ by design: accelerate fills the last DDP batch from the start.
    write_demonstrations(project / "data/instructions/keto.jsonl", 53)
    adapter = project / "models/adapters/keto"
    env = command_env()

    run_checked([str(BIN / "hivelm"), "tune", "--community", "keto", *TUNE, "tune.gradient_accumulation_steps=2"],
                project, env)
    single = load_file(str(adapter / "adapter_model.safetensors"))

    hooks = project / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(AUDIT_HOOK)
    audit = project / "audit"
    audit.mkdir()
    ddp_env = env | {"HIVELM_AUDIT_DIR": str(audit),
                     "PYTHONPATH": os.pathsep.join([str(hooks), *filter(None, [env.get("PYTHONPATH")])])}
    # `--cpu` would pick accelerate's simple launcher (one process unless MPI is set up); `--multi_gpu` starts
    # torchrun's workers, and tune's TrainingArguments(use_cpu=True) makes them train on CPU over gloo.
    launch = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
              "--main_process_port", str(free_port()), "-m", "hivelm", "tune", "--community", "keto", *TUNE]
    result = subprocess.run(launch, cwd=project, env=ddp_env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    ranks = {p.name: p.read_text().splitlines() for p in sorted(audit.glob("rank-*.txt"))}
    assert sorted(ranks) == ["rank-0.txt", "rank-1.txt"], ranks  # two worker processes ran
    assert any(line.startswith("write ") for line in ranks["rank-0.txt"])
    assert any(line.startswith("mlflow ") for line in ranks["rank-0.txt"])
    assert ranks["rank-1.txt"] == [], ranks["rank-1.txt"]  # rank 1 neither writes the adapter nor logs

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("hivelm-demo").experiment_id],
                              order_by=["attributes.start_time ASC"])
    assert [r.data.tags["stage"] for r in runs] == ["tune", "tune"]  # one run per invocation, not per rank
    ddp = runs[1]
    assert ddp.info.status == "FINISHED" and ddp.data.params["tune.gradient_accumulation_steps"] == "1"
    assert [m.step for m in client.get_metric_history(ddp.info.run_id, "loss")] == list(range(1, 7))
    assert ddp.data.metrics["steps"] == 6
    assert ddp.data.metrics["tokens_seen"] == runs[0].data.metrics["tokens_seen"]  # counted over both ranks

    parallel = load_file(str(adapter / "adapter_model.safetensors"))
    assert parallel.keys() == single.keys()
    assert max(float(single[k].abs().max()) for k in single if "lora_B" in k) > 1e-3  # the adapters trained (lora_B starts at zero), so agreeing is not trivial
    worst = max(float((single[k] - parallel[k]).abs().max()) for k in single)
    assert worst < DDP_TOLERANCE, worst
    print(f"DDP vs single process: max |diff| {worst:.2e}", file=sys.stderr)
