"""Benchmark: where a cold `hivelm run` of the demo (or a preset) spends its time, stage by stage.

    .venv/bin/python bench/repro.py [--keep DIR]          # cold run in a scratch copy of HEAD, then the table
    .venv/bin/python bench/repro.py --preset eating-disorder [--keep DIR]   # the public sample, CPU-sized
    .venv/bin/python bench/repro.py --from-mlflow DIR     # the table for the last `hivelm run` in project DIR

A cold run copies the committed tree (`git archive HEAD`) into a scratch folder, makes it a git repo of its
own (stages tag their runs with its commit) and runs this interpreter's `hivelm run -- --force` there: every
stage executes, from base_model's conversion on, with a fresh MLflow store. `--keep DIR` runs it in DIR (which must
not exist) and keeps it. Uncommitted changes are not in the copy: commit first. The stages import `hivelm`
as this interpreter does (PYTHONPATH included).

Times come from MLflow: the pipeline's parent run spans the whole `dvc repro`; each stage process opens one
top-level run under it (a fanned-out stage one per community), whose start and end times bound the stage's
work. A stage's time is the sum of its runs; `startup_gaps_s` is the pipeline's time outside every stage run
(process start-up and imports, DVC's own checks and hashing). Model stages add a throughput where they log
one: tune tokens/s (`tokens_seen` / `train_runtime_s`), generate new tokens/s (`*.new_tokens` / `*.seconds`),
survey prompts/s (`survey/prompts/*` / `survey/seconds/*`). CPU time per stage: user and system seconds of
its processes (`cpu_user_s`, `cpu_system_s`, logged by every stage run from resource.getrusage) and the
system share, the part spent in the kernel rather than in arithmetic. The last line is JSON.

`--preset NAME` runs configs/presets/NAME/params.yaml instead of the demo's params, with CPU_SIZED[NAME]
applied (`--full`: without them) and any `--set key=value` after them; the scratch copy is made beside this
checkout, so the preset's `../shared/...` data paths resolve as they do here. The effective params are the
copy's params.yaml (`--keep` it to archive them) and are listed in the JSON line.

`--baseline COMMIT` runs the same benchmark on COMMIT's tree and code first, then on HEAD's, and prints each
stage's time at HEAD as a ratio to the baseline's (below 1: faster). Machines of the same size differ by 1.4x
here, so only a ratio measured on one machine in one session says whether a change made HEAD faster. Each copy
runs its own code (its src/ first on PYTHONPATH) with its own params: the preset file and CPU_SIZED as that
commit declared them, then the same `--set` changes (keys both commits know). It runs in this interpreter's
environment, so a baseline that needs other packages cannot run here. The converted base model comes from the
conversion cache when that is warm (stages/base_model.py; HIVELM_CACHE=off converts in both runs).

    .venv/bin/python bench/repro.py --preset eating-disorder --set prepare.max_posts_per_community=150 \
        --baseline 0b360ca          # a slice of the public sample, the baseline commit run right beside HEAD
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

THROUGHPUT = {
    # stage -> (unit, numerator metric suffix or prefix, denominator ...): summed over the stage's runs
    "tune": ("tokens/s", lambda k: k == "tokens_seen", lambda k: k == "train_runtime_s"),
    "generate": ("tokens/s", lambda k: k.endswith(".new_tokens"), lambda k: k.endswith(".seconds")),
    "survey": ("prompts/s", lambda k: k.startswith("survey/prompts/"), lambda k: k.startswith("survey/seconds/")),
}


CPU_SIZED = {
    # The changes that fit a preset into a few CPU hours, declared once (reports/paper-sample/ records the
    # run that used them). eating-disorder: 80 tuning steps instead of full epochs over ~5,000 posts, with two
    # periodic evaluations on 128 demonstrations (four on 256 took about half of tune's time); 2 posts per topic
    # and corpus (54 per corpus); the nine SWED items criteria C1-C4 score (the paper's swed-prompts hold the
    # same nine); 8 posts in the in-context prompt instead of 20; attribution on 100 held-out posts per
    # community instead of all ~180 (its time grows with posts x 7 forward passes).
    "eating-disorder": ["tune.max_steps=80", "tune.eval_steps=40", "tune.eval_max_examples=128",
                        "generate.samples_per_topic=2", "survey.items=[Q5,Q6,Q7,Q8,Q9,Q13,Q14,Q15,Q16]",
                        "survey.in_context.k=8", "attribute.max_posts_per_community=100"],
}


def preset_params(name: str, overrides: list[str], commit: str = "HEAD") -> str:
    """configs/presets/NAME/params.yaml as committed at `commit`, with `overrides` applied, as YAML. HEAD's is
    validated like any params file; an older commit's is its own code's to validate (its schema may differ)."""
    import yaml
    from omegaconf import OmegaConf

    from hivelm.config import load_config

    source = f"configs/presets/{name}/params.yaml"
    shown = subprocess.run(["git", "show", f"{commit}:{source}"], cwd=REPO, capture_output=True, text=True)
    if shown.returncode != 0:
        raise SystemExit(f"bench/repro.py: no preset {name!r} at {commit} ({source} does not exist there)")
    merged = OmegaConf.merge(OmegaConf.create(shown.stdout), OmegaConf.from_dotlist(overrides))
    text = f"# bench/repro.py --preset {name}: {source} at {commit} with {' '.join(overrides) or 'no changes'}\n"
    text += yaml.safe_dump(OmegaConf.to_container(merged), sort_keys=False, allow_unicode=True)
    if commit == "HEAD":
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as check:
            check.write(text)
            check.flush()
            load_config(check.name)
    return text


def scratch_copy(keep: str | None, params: str | None = None, files: dict[str, str] | None = None,
                 commit: str = "HEAD") -> Path:
    """The committed tree (`git archive COMMIT`, HEAD by default) in a scratch folder (`keep`, which must not
    exist, or a new temporary one), made a git repo of its own (stages tag their runs with its commit), with `params` (YAML text)
    as its params.yaml and `files` ({relative path: text}) written in before that commit. A preset's copy sits
    beside this checkout (its data paths are relative to the project)."""
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="hivelm-repro-", dir=REPO.parent if params else None))
    if keep:
        work.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    if params is not None:
        (work / "params.yaml").write_text(params, encoding="utf-8")
    for name, text in (files or {}).items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text, encoding="utf-8")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "bench/repro.py"]):
        subprocess.run(cmd, cwd=work, check=True)
    return work


def pipeline_env() -> dict[str, str]:
    """This process's environment for a `hivelm` child in a scratch project: its own MLflow store and no parent
    run or DVC root inherited from a pipeline this one may run under."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "HIVELM_PARENT_RUN_ID", "DVC_ROOT")}
    return env | {"MLFLOW_DISABLE_TELEMETRY": "true"}


def cold_run(keep: str | None, params: str | None = None, commit: str = "HEAD") -> tuple[Path, float, int]:
    """Run the whole pipeline in a scratch copy of `commit` (`scratch_copy`) on that copy's own code, with
    `params` (YAML text) as its params.yaml when given; (project dir, wall seconds, exit code)."""
    work = scratch_copy(keep, params, commit=commit)
    hivelm = Path(sys.executable).parent / "hivelm"
    env = pipeline_env()
    # The copy's src/ ahead of the editable install's: the benchmark times the committed code, whichever commit.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(work / "src"), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    # --force: every stage runs. Without it DVC would skip a stage whose inputs came out byte-identical to
    # dvc.lock's and whose outputs are committed (evaluate's reports, say): a fair first run, but not cold.
    code = subprocess.run([str(hivelm), "run", "--", "--force"], cwd=work, env=env).returncode
    return work, time.perf_counter() - started, code


def store_uri(project: str | Path) -> str:
    """A tracking URI as given, or the project's own sqlite store (what `hivelm run` logs to by default)."""
    text = str(project)
    if "://" in text:
        return text
    db = Path(project) / "mlflow.db"
    if not db.is_file():
        raise SystemExit(f"bench/repro.py: {db} does not exist (no `hivelm run` in {project}?)")
    return f"sqlite:///{db.resolve()}"


def stage_times(uri: str, pipeline_run_id: str | None = None) -> dict:
    """Per-stage wall time, share and throughput for one pipeline run (default: the newest) in store `uri`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if pipeline_run_id is None:
        parents = client.search_runs(experiments, "tags.stage = 'pipeline'", order_by=["attributes.start_time DESC"],
                                     max_results=1)
        if not parents:
            raise SystemExit(f"bench/repro.py: no pipeline run (from `hivelm run`) in {uri}")
        parent = parents[0]
    else:
        parent = client.get_run(pipeline_run_id)
    pid = parent.info.run_id
    runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{pid}'", max_results=5000)
    stages: dict[str, dict] = defaultdict(lambda: {"seconds": 0.0, "runs": 0, "metrics": defaultdict(float)})
    for r in runs:
        if r.info.end_time is None:
            continue  # still running, or killed without an end: not a finished stage
        stage = stages[r.data.tags.get("stage", r.info.run_name)]
        stage["seconds"] += (r.info.end_time - r.info.start_time) / 1000
        stage["runs"] += 1
        for key, value in r.data.metrics.items():
            stage["metrics"][key] += value
    end = parent.info.end_time or max((r.info.end_time or 0) for r in runs)
    total = (end - parent.info.start_time) / 1000
    table = {}
    for name, stage in sorted(stages.items(), key=lambda kv: -kv[1]["seconds"]):
        row = {"seconds": round(stage["seconds"], 1), "share": stage["seconds"] / total, "runs": stage["runs"]}
        if name in THROUGHPUT:
            unit, numerator, denominator = THROUGHPUT[name]
            num = sum(v for k, v in stage["metrics"].items() if numerator(k))
            den = sum(v for k, v in stage["metrics"].items() if denominator(k))
            if den > 0:
                row["throughput"], row["unit"] = num / den, unit
        user, system = stage["metrics"].get("cpu_user_s"), stage["metrics"].get("cpu_system_s")
        if user is not None and system is not None:  # runs from before hivelm logged CPU time have neither
            row |= {"cpu_user_s": round(user, 1), "cpu_system_s": round(system, 1),
                    "system_share": system / max(user + system, 1e-9)}
        table[name] = row
    staged = sum(s["seconds"] for s in stages.values())
    return {"pipeline_run_id": pid, "status": parent.info.status, "pipeline_s": round(total, 1),
            "stages_s": round(staged, 1), "startup_gaps_s": round(total - staged, 1), "stages": table}


def render(result: dict) -> str:
    lines = [f"{'stage':<14}{'seconds':>9}{'share':>8}{'runs':>6}{'user s':>9}{'sys s':>8}{'sys %':>7}  throughput"]
    total = result["pipeline_s"]
    for name, row in result["stages"].items():
        rate = f"{row['throughput']:.1f} {row['unit']}" if "throughput" in row else ""
        cpu = (f"{row['cpu_user_s']:>9.1f}{row['cpu_system_s']:>8.1f}{row['system_share']:>7.0%}"
               if "system_share" in row else " " * 24)
        lines.append(f"{name:<14}{row['seconds']:>9.1f}{row['share']:>8.1%}{row['runs']:>6}{cpu}  {rate}")
    lines.append(f"{'(gaps)':<14}{result['startup_gaps_s']:>9.1f}{result['startup_gaps_s'] / total:>8.1%}"
                 "        process start-ups, DVC checks between stages")
    lines.append(f"{'pipeline':<14}{total:>9.1f}{1:>8.0%}        status {result['status']}")
    if "wall_s" in result:
        lines.append(f"{'wall clock':<14}{result['wall_s']:>9.1f}          `hivelm run` from start to exit")
    return "\n".join(lines)


def ratios(head: dict, baseline: dict) -> dict:
    """HEAD's seconds over the baseline's, per stage both ran, for the pipeline and for the wall clock."""
    def ratio(a, b):
        return round(a / b, 3) if a is not None and b else None

    return {"pipeline": ratio(head["pipeline_s"], baseline["pipeline_s"]),
            "wall": ratio(head.get("wall_s"), baseline.get("wall_s")),
            "stages": {name: ratio(row["seconds"], baseline["stages"][name]["seconds"])
                       for name, row in head["stages"].items() if name in baseline["stages"]}}


def render_ratios(result: dict) -> str:
    base, ratio = result["baseline"], result["ratio"]
    lines = [f"HEAD against {base['commit']} on this machine (ratio = HEAD s / baseline s; below 1 is faster)",
             f"{'stage':<14}{'baseline s':>11}{'HEAD s':>9}{'ratio':>7}"]
    for name, r in ratio["stages"].items():
        lines.append(f"{name:<14}{base['stages'][name]['seconds']:>11.1f}{result['stages'][name]['seconds']:>9.1f}"
                     + (f"{r:>7.2f}" if r is not None else f"{'-':>7}"))
    lines.append(f"{'pipeline':<14}{base['pipeline_s']:>11.1f}{result['pipeline_s']:>9.1f}{ratio['pipeline']:>7.2f}")
    if ratio["wall"] is not None:
        lines.append(f"{'wall clock':<14}{base['wall_s']:>11.1f}{result['wall_s']:>9.1f}{ratio['wall']:>7.2f}")
    return "\n".join(lines)


def committed_sizing(commit: str, preset: str) -> list[str]:
    """CPU_SIZED[preset] as bench/repro.py declared it at `commit`: a baseline runs its own CPU sizing, so the
    ratio compares what each commit benchmarks as the preset (a lever added to CPU_SIZED shows in it)."""
    shown = subprocess.run(["git", "show", f"{commit}:bench/repro.py"], cwd=REPO, capture_output=True, text=True)
    if shown.returncode != 0:
        return CPU_SIZED.get(preset, [])  # older than this benchmark: HEAD's sizing
    namespace: dict = {"__name__": "bench_repro_at_commit", "__file__": str(REPO / "bench" / "repro.py")}
    exec(compile(shown.stdout, f"{commit}:bench/repro.py", "exec"), namespace)  # definitions only: main is not called
    return list(namespace.get("CPU_SIZED", {}).get(preset, []))


def measure(args, overrides: list[str], commit: str = "HEAD") -> dict:
    """One cold run of `commit` (the demo, or the preset with `overrides`) and its stage table."""
    params = preset_params(args.preset, overrides, commit) if args.preset else None
    keep = args.keep if commit == "HEAD" or not args.keep else f"{args.keep}-baseline"
    work, wall, code = cold_run(keep, params, commit)
    print(f"bench/repro.py: `hivelm run` at {commit} exited {code} after {wall:.0f} s in {work}", file=sys.stderr)
    result = stage_times(store_uri(work)) | {"wall_s": round(wall, 1), "exit_code": code, "project": str(work)}
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-mlflow", metavar="DIR", help="read the last `hivelm run` of project DIR (or a tracking URI)")
    parser.add_argument("--keep", metavar="DIR", help="run in DIR (must not exist) and keep it")
    parser.add_argument("--run-id", help="this pipeline run instead of the newest")
    parser.add_argument("--preset", metavar="NAME", help="run configs/presets/NAME/params.yaml, CPU-sized (CPU_SIZED)")
    parser.add_argument("--full", action="store_true", help="with --preset: without the CPU-sized changes")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                        help="with --preset: one more params change (repeatable)")
    parser.add_argument("--baseline", metavar="COMMIT",
                        help="run COMMIT's tree and code first, then HEAD's, and print HEAD's times as ratios")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if (args.full or args.set) and not args.preset:
        parser.error("--full and --set go with --preset")
    if args.baseline and args.from_mlflow:
        parser.error("--baseline runs both commits: not with --from-mlflow")
    if args.from_mlflow:
        result = {"bench": "repro", "cpus": os.cpu_count(), **stage_times(store_uri(args.from_mlflow), args.run_id)}
        print(render(result))
        print(json.dumps(result))
        return 0
    overrides = ([] if args.full else CPU_SIZED.get(args.preset, [])) + args.set if args.preset else []
    baseline = None
    if args.baseline:
        commit = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=REPO, capture_output=True,
                                text=True)
        if commit.returncode != 0:
            parser.error(f"--baseline: {args.baseline!r} is not a commit of this repository")
        commit = commit.stdout.strip()
        sized = (committed_sizing(commit, args.preset) if not args.full else []) + args.set if args.preset else []
        baseline = measure(args, sized, commit) | {"commit": commit, "overrides": sized}
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    result = {"bench": "repro", "cpus": os.cpu_count(), "commit": head.stdout.strip(),
              **measure(args, overrides)}
    if args.preset:
        result |= {"preset": args.preset, "overrides": overrides}
    print(render(result))
    if baseline is not None:
        result |= {"baseline": baseline, "ratio": ratios(result, baseline)}
        print(render_ratios(result))
    print(json.dumps(result))
    return int(result["exit_code"] != 0 or (baseline is not None and baseline["exit_code"] != 0))


if __name__ == "__main__":
    sys.exit(main())
