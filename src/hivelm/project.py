"""`hivelm init DIR`: a project of one's own, next to (never inside) this checkout.

    hivelm init ../birds --posts ~/birds.csv                      # columns inferred from the header
    hivelm init ../birds --posts posts.csv --text-column body --community-column forum \
        --content-warning "Posts discuss hunting."                # a warning only when one is given

The new folder gets its own git repo and DVC repo (analytics off), params.yaml for the corpus (the demo's
params with the corpus, its communities, the MLflow experiment and report title set from DIR's name), the
configs the stages read (templates, metric rules, an instrument only when asked for: no instrument, no survey),
and dvc.yaml rendered for those params by `hivelm.dvcfile`. The base model is made by the base_model stage on
the first `hivelm run`; no demo output is copied. Like cookiecutter-data-science's `ccds`, it asks for nothing
interactively: what it inferred is printed, and a rerun with options corrects it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from hivelm.errors import HiveError

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout hivelm runs from (editable install)
DVC_PLOTS_TEMPLATE = "configs/dvc-plots/index.html"
"""The page `dvc plots show` fills (plots.html_template): vega from the project, not a CDN, so it renders offline."""
SHIPPED = ("configs/templates", "configs/metric_rules.yaml", str(Path(DVC_PLOTS_TEMPLATE).parent))
"""What every project needs from the checkout: the stages' template files, the gate's rules, vega for plots."""

GUESSES = {  # canonical field -> column names seen in common exports (Reddit/Pushshift, Twitter, forums)
    "text": ("text", "body", "content", "post", "message", "selftext", "full_text", "tweet"),
    "community": ("community", "subreddit", "group", "forum", "channel", "label"),
    "post_id": ("post_id", "id", "tweet_id", "message_id"),
    "author_id": ("author_id", "author", "user_id", "user", "username"),
    "timestamp": ("created_at", "created_utc", "timestamp", "date", "time"),
}
REQUIRED = ("text", "community")


def infer_columns(header: list[str], given: dict[str, str | None]) -> dict[str, str | None]:
    """{canonical field: column} from the options given, else the first known name in `header` (case-insensitive);
    HiveError when text or community is neither given nor found, or a given column is not in the header."""
    lowered = {name.lower(): name for name in header}
    columns = {}
    for field, names in GUESSES.items():
        if given.get(field):
            if given[field] not in header:
                raise HiveError(f"--{field.replace('_', '-')}-column {given[field]!r} is not a column of the "
                                f"posts file; its columns: {header}")
            columns[field] = given[field]
        else:
            columns[field] = next((lowered[n] for n in names if n in lowered), None)
        if field in REQUIRED and columns[field] is None:
            raise HiveError(f"no {field} column found among {header}: name it with "
                            f"--{field.replace('_', '-')}-column COLUMN")
    return columns


def community_key(label: str) -> str:
    """A community label as a key (names files, stages and runs): lowercase letters, digits, '_'."""
    key = re.sub(r"[^a-z0-9_-]+", "_", label.strip().lower()).strip("_-")
    return key if key and key[0].isalnum() else f"c_{key}"


def communities(labels) -> dict[str, dict[str, str]]:
    keys: dict[str, dict[str, str]] = {}
    for label in sorted({str(v).strip() for v in labels if v is not None and str(v).strip()}):
        key = community_key(label)
        while key in keys:
            key += "_"
        keys[key] = {"label": label, "name": label}
    if not keys:
        raise HiveError("the community column holds no labels")
    return keys


def project_params(name: str, data_path: str, columns: dict, found: dict, content_warning: str | None,
                   instrument: str | None, base_model: str | None) -> dict:
    """The demo's params.yaml with everything that belongs to the demo replaced by the project's own."""
    import yaml

    params = yaml.safe_load((SOURCE_ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["communities"] = found
    params["data"].update(path=data_path, format="auto", columns=columns, extra_sources=[])
    params["tracking"]["experiment"] = name
    params["report"].update(title=f"HiveLM report: {name}", content_warning=content_warning)
    params["survey"].update(instrument=instrument, items=[], criterion_params={})
    if base_model:
        params["base_model"]["source"] = base_model
    return params


def init(target: str | Path, posts: str | Path, given: dict[str, str | None], content_warning: str | None = None,
         instrument: str | None = None, base_model: str | None = None) -> Path:
    """Make the project (see the module docstring) and return its folder."""
    import yaml

    from hivelm.config import load_config
    from hivelm.tables import read_table

    target, posts = Path(target).resolve(), Path(posts).resolve()
    if target == SOURCE_ROOT or SOURCE_ROOT in target.parents:
        raise HiveError(f"{target}: inside the hivelm checkout {SOURCE_ROOT}; make your project beside it "
                        f"(e.g. hivelm init ../{target.name}), so the demo stays the demo")
    if target.exists() and any(target.iterdir()):
        raise HiveError(f"{target}: exists and is not empty; name a new folder")
    if not posts.is_file():
        raise HiveError(f"{posts}: posts file not found")
    if instrument is not None:
        instrument_file = SOURCE_ROOT / "configs/instruments" / f"{instrument}.yaml"
        if not instrument_file.is_file():
            shipped = sorted(p.stem for p in (SOURCE_ROOT / "configs/instruments").glob("*.yaml"))
            raise HiveError(f"--instrument {instrument}: no such instrument; shipped: {shipped}")
    frame = read_table(posts)
    columns = infer_columns([str(c) for c in frame.columns], given)
    found = communities(frame[columns["community"]])
    print("columns (override with --text-column, --community-column, ...):")
    for field, column in columns.items():
        print(f"  {field:<10} <- {column if column is not None else '(none)'}")
    counts = frame[columns["community"]].astype(str).str.strip().value_counts()
    print(f"communities ({len(found)}): " + ", ".join(f"{k} ({counts.get(v['label'], 0)} posts)"
                                                   for k, v in found.items()))
    target.mkdir(parents=True, exist_ok=True)
    data_path = Path("data") / posts.name
    (target / "data").mkdir()
    shutil.copy2(posts, target / data_path)
    for item in SHIPPED:
        source = SOURCE_ROOT / item
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        copy(source, target / item)
    if instrument is not None:
        (target / "configs/instruments").mkdir()
        shutil.copy2(instrument_file, target / "configs/instruments" / instrument_file.name)
    params = project_params(target.name, data_path.as_posix(), columns, found, content_warning,
                            f"configs/instruments/{instrument}.yaml" if instrument else None, base_model)
    (target / "params.yaml").write_text(
        f"# {target.name}: a HiveLM project made by `hivelm init` (every key: hivelm's docs/configuration.md).\n"
        + yaml.safe_dump(params, sort_keys=False, allow_unicode=True, width=110), encoding="utf-8")
    shutil.copy2(SOURCE_ROOT / ".gitignore", target / ".gitignore")
    with open(target / ".gitignore", "a", encoding="utf-8") as ignore:  # the posts stay out of git: `dvc add`
        ignore.write(f"# your posts: version them with `dvc add {data_path.as_posix()}`, not git\n"
                     f"/{data_path.as_posix()}\n")
    shutil.copy2(SOURCE_ROOT / ".dvcignore", target / ".dvcignore")
    _repos(target)
    _render(target, load_config(target / "params.yaml"))
    return target


def _repos(target: Path) -> None:
    """git init, then dvc init with analytics off (DVC's docs: `dvc config core.analytics false`) and the
    offline plots page (a relative plots.html_template is read from .dvc/: DVC's dvc/commands/plots.py)."""
    dvc = str(Path(sys.executable).parent / "dvc")
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "config", "core.analytics", "false"],
                [dvc, "config", "plots.html_template", f"../{DVC_PLOTS_TEMPLATE}"]):
        done = subprocess.run(cmd, cwd=target, capture_output=True, text=True)
        if done.returncode != 0:
            raise HiveError(f"{' '.join(cmd[:2])} in {target} failed: {done.stderr.strip()[:300]}")


def _render(target: Path, cfg) -> None:
    """dvc.yaml and the code hashes, rendered in the new folder by the same code as `hivelm dvc-yaml`."""
    import os

    from hivelm import dvcfile

    here = Path.cwd()
    os.chdir(target)  # dvcfile decides source tree vs own project from the working directory
    try:
        dvcfile.DVC_YAML.write_text(dvcfile.render(cfg), encoding="utf-8")
        dvcfile.write_code_hashes()
    finally:
        os.chdir(here)


def main(target: str, posts: str, given: dict, content_warning: str | None, instrument: str | None,
         base_model: str | None) -> int:
    made = init(target, posts, given, content_warning, instrument, base_model)
    print(f"made {made}: its own git and DVC repo, MLflow experiment {made.name!r}; next:")
    print(f"  cd {made} && hivelm check && hivelm run")
    return 0
