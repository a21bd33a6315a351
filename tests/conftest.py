"""Shared fixtures: a temporary project directory and a pre-migrated MLflow store copied per test."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHARED_DATA = REPO.parent / "shared" / "data" / "ed-communities"

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# The stages' own environment (hivelm.cli.STAGE_ENV: OpenMP threads sleep instead of spinning), set before any
# test imports torch: tests run models in this process, where `hivelm.cli.execute` would set it too late, and
# `make test`'s two workers share 2 cores, where a spinning thread takes the core from the other's arithmetic.
from hivelm.cli import STAGE_ENV  # noqa: E402  (no heavy import: `hivelm --help` is instant)

for _key, _value in STAGE_ENV.items():
    os.environ.setdefault(_key, _value)

# Test tiers. `make test-fast` runs `-m "not heavy"`: pure unit tests for the inner loop. A test is heavy when
# it is marked integration or slow, uses a fixture that loads a model or a tracking store, or is marked heavy
# itself; in the fast tier a session that still imports one of HEAVY_MODULES fails, naming the module.
HEAVY_FIXTURES = {"tiny_model_dir", "project", "mlflow_template_db", "small_corpus", "pipeline_repo", "embedder",
                  "jigsaw", "detoxify_checkpoint", "tiny_judge_parts", "real_project", "committed_pipeline",
                  "keto_pipeline"}
HEAVY_MODULES = ("torch", "transformers", "peft", "mlflow", "dvc", "sentence_transformers")
LONGEST = ("test_ci_gate.py", "test_strong_signal.py", "test_rerun.py", "test_preset.py", "test_pipeline.py",
           "test_forkserver.py", "test_team.py")
"""The longest test files, longest first (measured in CI's make test: the two real SmolLM2 pipelines about 4.5
minutes each, the tiny pipelines 1.5 to 2): queued in this order before every other file."""


def free_port() -> int:
    """A port free now on 127.0.0.1 (a server started later may still find it taken: retry there)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("integration") or item.get_closest_marker("slow") \
                or HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.heavy)
    # Files with end-to-end tests first, then files with other heavy ones, unit-test files last (a file's tests
    # stay together, in their order, for its module fixtures): `make test`'s workers (pytest-xdist,
    # --dist loadfile hands the next file to whichever worker is free) start the long files early and the
    # short ones fill the gaps, so the suite does not end waiting on one worker's long file.
    # The longest files (LONGEST) start first, longest first, so the suite ends on short files on both workers:
    # started last, a long one runs on alone while the other worker idles. Needs `--no-loadscope-reorder`
    # (Makefile): pytest-xdist otherwise queues files by their number of tests, one-test files last.
    def rank(item) -> int:
        if item.path.name in LONGEST:
            return LONGEST.index(item.path.name) - len(LONGEST)
        return 0 if item.get_closest_marker("integration") or item.get_closest_marker("slow") \
            else 1 if item.get_closest_marker("heavy") else 2

    files: dict[str, int] = {}
    for item in items:
        files[item.path] = min(files.get(item.path, 2), rank(item))
    items.sort(key=lambda item: files[item.path])  # stable: each file's tests keep their order


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("HIVELM_TEST_FAST") and exitstatus == 0:
        loaded = [name for name in HEAVY_MODULES if name in sys.modules]
        if loaded:
            session.exitstatus = 1
            print(f"\ntest-fast imported {loaded}: mark the test that needs them `heavy` (tests/conftest.py)")


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory) -> Path:
    """Migrating a fresh sqlite store takes seconds: do it once per session, copy it per test."""
    from hivelm.tracking import ensure_store

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    ensure_store(f"sqlite:///{path}")
    return path


@pytest.fixture
def project(tmp_path, monkeypatch, mlflow_template_db) -> Path:
    """A temporary project root (cwd) with the shipped params, templates and a private MLflow store."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    shutil.copy(mlflow_template_db, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("HIVELM_PARENT_RUN_ID", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    return tmp_path


def write_corpus(path: Path, rows: list[dict]) -> Path:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


VOCABULARY = {
    "keto": "almond flour cauliflower rice net carbs fat bombs electrolytes bacon avocado butter cheese macros "
            "meal prep eggs salmon zucchini noodles coconut oil ketones breakfast dinner recipe crispy oven",
    "running": "tempo run long run intervals taper week new shoes cadence hill repeats marathon half parkrun pace "
               "splits gels race day shin splints warmup cooldown track miles kilometres legs",
    "body_positivity": "self acceptance fashion diet culture mirror talk representation rest joy bodies clothes "
                       "swimsuit summer media kindness worth confidence neutral gentle proud skin stretch marks",
    "ed_recovery": "dietitian fear foods therapy hard days meal plan support group recovery hope relapse "
                   "prevention gentle progress snack journal team nourish courage rest tiny wins proud",
}


def community_posts(community: str, n: int, seed: int = 0) -> list[dict]:
    """n distinct posts for one community: seeded draws from its own vocabulary, so communities differ
    in vocabulary and posts are too different from each other to count as near duplicates."""
    import random

    words = VOCABULARY[community].split()
    rng = random.Random(f"{community}-{seed}")
    return [{
        "post_id": f"{community}-{i}",
        "community": community,
        "author_id": f"u{i % 9}",
        "created_at": f"2026-01-{1 + i % 28:02d}T10:00:00",
        "text": " ".join(rng.choice(words) for _ in range(12)) + f" #{community} {i}",
    } for i in range(n)]


@pytest.fixture
def small_corpus(project) -> Path:
    """A 4-community corpus of 40 posts each at the path params.yaml expects."""
    rows = [row for community in VOCABULARY for row in community_posts(community, 40)]
    return write_corpus(project / "data" / "demo" / "posts.csv", rows)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny random Llama with a ChatML tokenizer (see tests/tiny_model.py)."""
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def run(cmd, cwd, check=True):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", MLFLOW_DISABLE_TELEMETRY="true")
    for key in ("MLFLOW_TRACKING_URI", "HIVELM_PARENT_RUN_ID", "DVC_ROOT"):
        env.pop(key, None)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


PIPELINE_COMMUNITIES = ("keto", "running")
TINY_RUN = {  # a few steps and generations: the real code paths, in seconds
    "tune": {"max_steps": 4, "batch_size": 4, "eval_steps": 2, "max_length": 256},
    "generate": {"topics": ["breakfast", "motivation"], "samples_per_topic": 2,
                 "decoding": {"max_new_tokens": 8, "batch_size": 8}, "in_context": {"k": 3}},
    "survey": {"in_context": {"k": 3}, "statistics": {"bootstrap_resamples": 50, "permutations": 50}},
    # a few generations per corpus: measured anyway (evaluate.min_posts would call them insufficient)
    "evaluate": {"statistics": {"bootstrap_resamples": 20}, "min_posts": 2},
    "attribute": {"statistics": {"bootstrap_resamples": 20}},
}


def deep_update(target: dict, values: dict) -> dict:
    """Merge nested `values` into `target` key by key (a section's other keys stay)."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_update(target[key], value)
        else:
            target[key] = value
    return target


def make_pipeline_repo(repo: Path, mlflow_template_db: Path, tiny_model_dir: Path) -> Path:
    """The project's pipeline files in a fresh git repo: two demo communities of 45 posts each (enough to
    show per-community fan-out and cross-community metrics) and the base model swapped for a tiny local one
    (a local folder is a supported `base_model.source`)."""
    import pandas as pd
    import yaml

    demo = pd.read_csv(REPO / "data/demo/posts.csv", dtype=str, keep_default_na=False)
    (repo / "data/demo").mkdir(parents=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["communities"] = {k: params["communities"][k] for k in PIPELINE_COMMUNITIES}
    demo = demo[demo["community"].isin(PIPELINE_COMMUNITIES)]
    demo.groupby("community").head(45).to_csv(repo / "data/demo/posts.csv", index=False)
    params["prepare"]["min_posts_per_community"] = 10
    return init_pipeline_repo(repo, params, mlflow_template_db, tiny_model_dir)


def init_pipeline_repo(repo: Path, params: dict, mlflow_template_db: Path, tiny_model_dir: Path) -> Path:
    """Copy dvc.yaml, configs and src into `repo`, write `params` with the tiny base model and TINY_RUN
    sizes, and commit it all to a fresh git repo with a pre-migrated MLflow store."""
    import yaml

    repo.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, repo / name)
    for name in ("configs", "src"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (repo / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc" / "config", repo / ".dvc" / "config")
    params["base_model"]["source"] = str(tiny_model_dir)
    deep_update(params, TINY_RUN)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(mlflow_template_db, repo / "mlflow.db")  # the default store location, pre-migrated
    run(["git", "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init"], repo)
    return repo



def keto_only(params: dict) -> dict:
    """The smallest slice that still runs every stage: one community, one corpus (the untuned baseline)."""
    params["communities"] = {"keto": params["communities"]["keto"]}
    params["generate"]["corpora"] = params["evaluate"]["corpora"] = params["survey"]["corpora"] = ["untuned"]
    params["survey"]["validity"] = {"enabled": False}  # test_pipeline checks the card whole; here it costs CI time
    return params


@pytest.fixture(scope="session")
def keto_pipeline(tmp_path_factory, worker_id, mlflow_template_db, tiny_model_dir) -> tuple[Path, str]:
    """(repo, stdout) of one `hivelm run` of the `keto_only` slice, run once per session and committed in its
    git repo's starting state: tests that need a finished pipeline copy it (`copy_pipeline`) instead of each
    running the same pipeline again. Under `make test`'s workers (pytest-xdist) the first worker to need it
    runs it in the folder all workers share, under a lock, and the others wait for it and reuse it (the
    recipe in pytest-xdist's docs, "Making session-scoped fixtures execute only once")."""
    import json

    import yaml
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    record = shared / "keto-pipeline.json"
    with FileLock(shared / "keto-pipeline.lock"):
        if record.is_file():
            built = json.loads(record.read_text())
            return Path(built["repo"]), built["stdout"]
        repo = make_pipeline_repo(tmp_path_factory.mktemp("keto-pipeline") / "repo", mlflow_template_db,
                                  tiny_model_dir)
        params = keto_only(yaml.safe_load((repo / "params.yaml").read_text()))
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        stdout = run([str(BIN / "hivelm"), "run"], repo).stdout
        record.write_text(json.dumps({"repo": str(repo), "stdout": stdout}))
        return repo, stdout


def copy_pipeline(source: Path, target: Path) -> Path:
    """A private copy of a finished pipeline repo (git, DVC cache and state, MLflow store, outputs). Its
    MLflow runs keep their artifacts where the source logged them; new runs log where the copy's store says."""
    shutil.copytree(source, target, symlinks=True)
    return target


def strict_json(text: str, where: str = "JSON"):
    """Parse `text` as strict JSON: a bare NaN or Infinity (which Python's json accepts) fails, naming `where`."""
    import json

    def refuse(constant):
        raise AssertionError(f"{where}: {constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def intervals(node, path: str = ""):
    """Every {value, low, high} mapping in a JSON tree, with its path."""
    if isinstance(node, dict):
        if {"value", "low", "high"} <= set(node):
            yield path, node
        for key, value in node.items():
            yield from intervals(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from intervals(value, f"{path}[{index}]")


def assert_strict_reports(root: Path, skip: tuple[str, ...] = ()) -> int:
    """Every JSON file under `root` (but the subfolders `skip`) parses strictly and every interval holds its
    estimate: low <= value <= high."""
    checked = 0
    for path in sorted(Path(root).rglob("*.json")):
        if path.relative_to(root).parts[0] in skip:
            continue
        tree = strict_json(path.read_text(encoding="utf-8"), str(path))
        for where, triple in intervals(tree):
            if None not in (triple["value"], triple["low"], triple["high"]):
                assert triple["low"] <= triple["value"] <= triple["high"], f"{path}{where}: {triple}"
                checked += 1
    assert checked, f"no interval found under {root}"
    return checked


def chromium_flags(profile: Path) -> list[str]:
    """Headless Debian Chromium, offline-safe flags."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is missing: `make setup` installs it (Debian package chromium)"
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
            "--window-size=1400,900", "--virtual-time-budget=20000"]


# Measures, in the browser, what a reader at the window size of chromium_flags sees: each table's right edge
# against the viewport (a table past it has its later columns cut off), and whether the page scrolls sideways.
MEASURE_TABLES = """<script>
const width = document.documentElement.clientWidth;
const wide = [...document.querySelectorAll('table')].filter(t => t.getBoundingClientRect().right > width + 0.5)
  .map(t => [...t.querySelectorAll('th, td')].map(c => c.textContent).find(x => x) || '(empty)');
if (document.documentElement.scrollWidth > width) wide.push('page scrolls sideways');
document.body.setAttribute('data-overflowing', JSON.stringify(wide));
</script>"""


def overflowing_tables(page: Path, profile: Path) -> list[str]:
    """First header of each table of the HTML file `page` wider than a 1,400 px window (chromium_flags)."""
    measured = page.with_name(f"{page.stem}.measured.html")
    measured.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE_TABLES + "</body>"),
                        encoding="utf-8")
    dom = subprocess.run([*chromium_flags(profile), "--dump-dom", measured.as_uri()], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-overflowing="([^"]*)"', dom)
    assert found, "the measuring script did not run"
    return json.loads(html.unescape(found.group(1)))


def not_blank(png) -> bool:
    """A rendered page has many colours and real contrast; a blank or error page has almost none."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    return pixels.std() > 10 and len(np.unique(pixels)) > 50
