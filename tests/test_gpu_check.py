"""bench/gpu_check.py, the prepared GPU check (issue 29), run on the CPU on the tiny model so it cannot rot
before a GPU machine runs it; and the rule it checks there: no stage server when a model is not on the CPU."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import pytest

from conftest import REPO, strict_json

TINY = ["--device", "cpu", "--sizes", "tiny", "--steps", "2", "--batch-size", "2", "--max-length", "64",
        "--prompts", "4", "--max-new-tokens", "4", "--gen-batch-size", "4", "--items", "2", "--personas", "1",
        "--posts", "4", "--loglik-batch-size", "4", "--threads", "1"]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_gpu_check", REPO / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.heavy
def test_the_check_runs_on_the_cpu_and_reports_every_field(tmp_path, capsys):
    bench = load_bench()
    result = bench.main([*TINY, "--out", str(tmp_path / "gpu.json")])
    printed = strict_json(capsys.readouterr().out.strip().splitlines()[-1], "last stdout line")
    assert printed == strict_json((tmp_path / "gpu.json").read_text(), "--out") == json.loads(json.dumps(result))
    assert {"device", "device_name", "dtype", "torch", "transformers", "peft", "bitsandbytes", "sizes",
            "fork_safety", "ok"} <= set(result)
    tiny = result["sizes"]["tiny"]
    for phase in ("tune", "generate", "loglik"):
        assert tiny[phase]["tokens_per_s"] > 0 and tiny[phase]["peak_memory_gib"] > 0, phase
    assert tiny["tune"]["steps"] == 2 and tiny["tune"]["timed_steps"] == 1  # the warm-up step left out
    assert tiny["generate"]["new_tokens"] > 0 and tiny["attn_implementation"] == "sdpa"
    assert "CUDA" in tiny["qlora"]["skipped"]  # skipped with its reason
    comparison = tiny["comparison"]
    assert comparison["dtype"] == "float32" and comparison["tolerance_nats"] == bench.TOLERANCE["float32"]
    assert set(comparison["max_abs_diff_nats"]) == {"survey", "adapter", "base"}
    assert max(comparison["max_abs_diff_nats"].values()) <= comparison["tolerance_nats"] and comparison["ok"]
    assert result["fork_safety"] == {"stage_server": True, "forks": 0, "forks_with_cuda_initialized": 0,
                                     "ok": True}
    assert tiny["ok"] and result["ok"]


def device_fields(node, prefix=""):
    """Every config field that names a torch device, as (dotted key, parent dataclass, field name)."""
    for field in dataclasses.fields(node):
        value = getattr(node, field.name)
        if dataclasses.is_dataclass(value):
            yield from device_fields(value, f"{prefix}{field.name}.")
        elif field.name == "device" or field.name.endswith("_device"):
            yield f"{prefix}{field.name}", node, field.name


def test_any_model_device_off_the_cpu_turns_the_stage_server_off(monkeypatch):
    """pipeline.model_devices must list every device field the config declares, or a CUDA stage could be
    forked from the server: each one set to cuda alone turns it off."""
    from hivelm import pipeline, processes
    from hivelm.config import HiveConfig

    monkeypatch.delenv(processes.DISABLE_ENV, raising=False)
    assert processes.serves(pipeline.model_devices(HiveConfig()))
    keys = [key for key, _, _ in device_fields(HiveConfig())]
    for key in keys:
        cfg = HiveConfig()
        parent, name = next((parent, name) for other, parent, name in device_fields(cfg) if other == key)
        setattr(parent, name, "cuda")
        assert not processes.serves(pipeline.model_devices(cfg)), key
    assert len(keys) == len(pipeline.model_devices(HiveConfig())) == 3, keys


def test_the_command_docs_scaling_shows_parses():
    """The one command docs/scaling.md gives for the GPU machine names flags and sizes the script has."""
    import shlex

    text = (REPO / "docs" / "scaling.md").read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if "bench/gpu_check.py --device" in line)
    words = shlex.split(line.replace("<gpu>", "h100"))
    args = load_bench().parse_args(words[words.index("bench/gpu_check.py") + 1:])
    assert args.device == "cuda" and args.sizes == ["tiny", "1b"] and args.out == "reports/gpu/h100.json"
