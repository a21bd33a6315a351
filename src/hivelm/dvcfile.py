"""dvc.yaml, rendered from the stage contracts (hivelm.contracts) and the stages' import closures.

    hivelm dvc-yaml            # rewrite dvc.yaml (from the contracts and params.yaml, or --params FILE)
    hivelm dvc-yaml --check    # exit 1 if the committed dvc.yaml differs from the render (CI runs a test of it)

The params decide which stages are rendered and which files they name are deps (extra sources of prepare,
external corpora of evaluate: hivelm.contracts.left_out_stages, named_input_files); the shipped params.yaml
renders every stage and names no such file.

A stage's code deps are every module its stage module imports, directly or through other hivelm modules
(function-level imports included, since heavy imports live inside functions), found by reading the source
with `ast`: nothing is imported. Package `__init__.py` files count, since importing a submodule runs them.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

from hivelm.contracts import CONTRACTS, KEY, Contract, left_out_stages, named_input_files, overlaps

PACKAGE = Path(__file__).resolve().parent  # src/hivelm
DVC_YAML = Path("dvc.yaml")

HEADER = """\
# HiveLM pipeline, rendered by `hivelm dvc-yaml` from src/hivelm/contracts.py (do not edit by hand: a test
# compares this file with the render). Run it with `hivelm run` (= `dvc repro` under one parent MLflow run),
# `dvc repro`, `dvc exp run -S key=value`, `dvc dag`.
# deps: each stage's declared inputs, then every src/hivelm module its code imports (so a code change reruns
# exactly the stages that import it); params: the exact params.yaml keys the stage reads.
# Outputs are `persist: true`: each stage swaps in new outputs only when it succeeds, so a failed stage keeps
# its previous outputs (DVC then skips its run-cache, so every executed stage logs an MLflow run).
"""

# `dvc plots show` / `dvc plots diff HEAD~1`: per-community fidelity metrics and the cross-community FID table.
PLOTS = (
    ("fid", "bar_horizontal", "fid", "model", "FID to own held-out posts (lower is better)"),
    ("attribution", "bar_horizontal", "attribution", "model", "Share attributed to own community (higher is better)"),
    ("auc", "bar_horizontal", "auc", "model", "Real-vs-generated discriminator AUC (0.5 is best)"),
    ("emotion_alignment", "bar_horizontal", "emotion_alignment", "model",
     "Emotion alignment, 1 - JS distance (higher is better)"),
    ("cross_community", "scatter", "real", "generated", "Cross-community FID (generated vs real community)"),
)


# The attribute stage's confusion matrices on real held-out posts (rows: actual, predicted community).
CONFUSION_PLOTS = (
    ("likelihood", "Held-out posts attributed by argmax adapter likelihood gain"),
    ("tfidf", "Held-out posts attributed by the TF-IDF origin classifier"),
)


def module_file(name: str) -> Path | None:
    """src/hivelm/... file of module `name` (a package's __init__.py), or None outside the package."""
    parts = name.split(".")
    if parts[0] != "hivelm":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(path: Path) -> set[str]:
    """hivelm module names imported anywhere in `path` (top level or inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from hivelm import text`
    return {n for n in names if n.split(".")[0] == "hivelm" and module_file(n)}


@cache
def import_closure(module: str) -> tuple[Path, ...]:
    """Every src/hivelm file that importing `module` and calling its functions can execute, sorted."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
        todo.extend(_imported(module_file(name)))
    return tuple(sorted({module_file(n) for n in seen}))


def _relative(path: Path) -> str:
    root = PACKAGE.parent.parent
    return path.relative_to(root).as_posix()


CODE_HASHES = Path("hivelm-code.yaml")
"""In a project of one's own (`hivelm init`), which holds no copy of src/hivelm, each stage's code dep is its
key in this params file: the sha256 of the installed hivelm files the stage imports, rewritten by `hivelm run`
and `hivelm dvc-yaml`, so an upgrade of hivelm reruns exactly the stages whose code changed."""


def in_source_tree() -> bool:
    """Whether the working directory is hivelm's own checkout (or a copy with src/hivelm): code deps are then
    the files themselves."""
    return (Path(_relative(PACKAGE)) / "__init__.py").is_file()


def code_hashes() -> dict[str, str]:
    """{stage: sha256 of the source of every hivelm module the stage's code imports}."""
    import hashlib

    hashes = {}
    for contract in CONTRACTS:
        digest = hashlib.sha256()
        for path in import_closure(contract.module):
            digest.update(_relative(path).encode() + b"\0" + path.read_bytes())
        hashes[contract.name] = digest.hexdigest()
    return hashes


def write_code_hashes(path: Path = CODE_HASHES) -> None:
    import yaml

    text = ("# Written by hivelm (dvcfile.code_hashes): the code each stage runs, for DVC (do not edit).\n"
            + yaml.safe_dump(code_hashes(), sort_keys=False))
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def code_deps(contract: Contract) -> list[str]:
    return [_relative(p) for p in import_closure(contract.module)]


def stage_entry(contract: Contract, left_out: tuple[Contract, ...] = (), files: tuple[str, ...] = ()) -> dict:
    """One stage of dvc.yaml: deps on outputs of `left_out` stages are dropped (they will not exist), and the
    input `files` its params name are deps too."""
    def persisted(items, **extra):
        return [{item: {**extra, "persist": True}} for item in items]

    missing = [out for other in left_out for out in other.produced]
    declared = [dep for dep in contract.deps if not any(overlaps(dep, out) for out in missing)]
    local = in_source_tree()
    body: dict = {"cmd": f"hivelm {contract.name}" + (f" --community {KEY}" if contract.per_community else ""),
                  "deps": [*declared, *files, *(code_deps(contract) if local else ())],
                  "params": [*contract.params, *(() if local else ({str(CODE_HASHES): [contract.name]},))]}
    outs = persisted(contract.outs) + persisted(contract.reports, cache=False)
    if outs:
        body["outs"] = outs
    if contract.metrics:
        body["metrics"] = persisted(contract.metrics, cache=False)
    return {"foreach": "${communities}", "do": body} if contract.per_community else body


def rendered_stages(cfg=None) -> tuple[tuple[Contract, ...], tuple[Contract, ...]]:
    """(stages dvc.yaml runs, stages it leaves out) under `cfg` (None: every stage)."""
    stages = [c for c in CONTRACTS if c.in_dvc]
    left_out = left_out_stages(cfg) if cfg is not None else ()
    return tuple(c for c in stages if c.name not in left_out), tuple(c for c in stages if c.name in left_out)


def render(cfg=None) -> str:
    """dvc.yaml for the params `cfg` (a HiveConfig; None renders every stage and no file named in params)."""
    import yaml

    from hivelm import paths

    stages, left_out = rendered_stages(cfg)
    files = named_input_files(cfg) if cfg is not None else {}
    document = {
        "stages": {c.name: stage_entry(c, left_out, tuple(files.get(c.name, ()))) for c in stages},
        "plots": [{str(paths.plot(name)): {"template": template, "x": x, "y": y, "title": title}}
                  for name, template, x, y, title in PLOTS]
                 + [{str(paths.SURVEY_PLOT): {"template": "bar_horizontal", "x": "value", "y": "model",
                                              "title": "Survey primary score per community and model (e.g. SWED WCS)"}}]
                 + [{str(paths.attribute_confusion(name)): {"template": "confusion", "x": "actual", "y": "predicted",
                                                            "title": title}} for name, title in CONFUSION_PLOTS],
    }
    body = yaml.safe_dump(document, sort_keys=False, width=110, default_flow_style=False)
    return HEADER + body


def main(check: bool, path: Path = DVC_YAML, cfg=None) -> int:
    rendered = render(cfg)
    if check:
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != rendered:
            print(f"{path} differs from the stage contracts: run `hivelm dvc-yaml` and commit it", file=sys.stderr)
            return 1
        print(f"{path} matches the stage contracts")
        return 0
    path.write_text(rendered, encoding="utf-8")
    if not in_source_tree():
        write_code_hashes()
    print(f"wrote {path} ({len(rendered_stages(cfg)[0])} stages)")
    return 0
