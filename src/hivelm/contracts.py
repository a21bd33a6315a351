"""Every stage's contract, declared once: what it reads, what it writes, which params it depends on.

Everything else follows from this table:
- `hivelm <stage>` looks the stage up here, opens its MLflow run with exactly the declared params (and a
  `config_hash` of them), and hands the stage a config in which an undeclared param cannot be read;
- dvc.yaml is rendered from it (`hivelm dvc-yaml`): deps are the declared inputs plus the stage module's
  import closure inside src/hivelm, params are the declared keys; a test fails when the committed dvc.yaml
  differs from the render, so a code change always reruns the stages that import it, and only those.

Paths come from `hivelm.paths`; fanned-out stages are declared with DVC's `${key}` for the community.
The params in force shape the render in two ways: every input file they name (prepare's data.extra_sources,
evaluate's external corpora) is a dep of the stage that reads it, and with only external corpora the model
stages (MODEL_STAGES) are left out, with the deps other stages had on their outputs.

To add a stage: write `hivelm/stages/<name>.py` with `main(cfg, run)` (or `main(cfg, run, community)`),
declare it below, and run `hivelm dvc-yaml` to rewrite dvc.yaml.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from hivelm import paths

KEY = "${key}"  # DVC's foreach key: the community


@dataclass(frozen=True)
class Contract:
    name: str
    help: str
    per_community: bool
    params: tuple[str, ...]
    """params.yaml keys the stage reads (a section name covers the whole section); `${key}` = the community."""
    deps: tuple[str, ...] = ()
    """Declared inputs: artifact paths and `${param}` paths (files named in params.yaml)."""
    outs: tuple[str, ...] = ()
    """Outputs DVC caches (data, models): git-ignored, restored by `dvc pull`."""
    reports: tuple[str, ...] = ()
    """Small numbers-only outputs committed to git (DVC `cache: false`)."""
    metrics: tuple[str, ...] = ()
    """Metrics files (`dvc metrics`), committed to git: numbers only and few of them, since `dvc metrics show`
    and `dvc exp show` print one column per number (the headline alone; every other figure is in reports)."""
    in_dvc: bool = True
    """False for stages run by hand (detect): not rendered into dvc.yaml."""

    @property
    def module(self) -> str:
        return f"hivelm.stages.{self.name}"

    @property
    def produced(self) -> tuple[str, ...]:
        """Every path the stage writes: outs, reports and metrics."""
        return (*self.outs, *self.reports, *self.metrics)

    def artifacts(self, community: str | None = None) -> list[str]:
        """The artifact paths the stage reads and writes, for `community` (params-named files left out)."""
        named = (*self.deps, *self.outs, *self.reports, *self.metrics)
        return [path.replace(KEY, community or KEY) for path in named
                if "${" not in path.replace(KEY, community or "")]


CONTRACTS = (
    Contract("detect", "Louvain communities on the interaction graph -> labelled posts", False,
             params=("detect", "data.columns.author_id", "data.encoding"), in_dvc=False),
    Contract("base_model", "convert the embedded GGUF (or copy a folder / hub id) into the base model folder", False,
             params=("base_model.source", "base_model.revision", "base_model.dtype"),
             outs=(str(paths.BASE_MODEL),)),
    Contract("prepare", "clean, anonymise, deduplicate and split the raw corpus", False,
             params=("communities", "data", "prepare"),
             # the base model is read only when prepare.cap_strategy is lowest_perplexity
             deps=("${data.path}", str(paths.BASE_MODEL)),
             outs=(str(paths.PREPARED),), reports=(str(paths.PREPARE_STATS),)),
    Contract("instruct", "pair training posts with persona instructions", True,
             params=(f"communities.{KEY}", "instruct"),
             deps=(str(paths.train_posts(KEY)), "${instruct.templates}"),
             outs=(str(paths.instructions(KEY)),)),
    Contract("tune", "LoRA-tune one adapter per community on the base model", True,
             params=("base_model.device", "base_model.dtype", "base_model.attn_implementation",
                     "base_model.num_threads", "tune"),
             deps=(str(paths.instructions(KEY)), str(paths.BASE_MODEL)),
             outs=(str(paths.adapter(KEY)),)),
    Contract("generate", "generate and filter the finetuned, untuned and in-context corpora", True,
             params=(f"communities.{KEY}", "base_model.device", "base_model.dtype",
                     "base_model.attn_implementation", "base_model.num_threads", "generate"),
             deps=(str(paths.train_posts(KEY)), str(paths.BASE_MODEL), str(paths.adapter(KEY)),
                   "${generate.templates}"),
             outs=(str(paths.generated(KEY)),), reports=(str(paths.generate_stats(KEY)),)),
    Contract("survey", "administer the psychometric instrument to the adapter and both baselines", True,
             params=(f"communities.{KEY}", "base_model.device", "base_model.dtype",
                     "base_model.attn_implementation", "base_model.num_threads", "survey"),
             deps=(str(paths.train_posts(KEY)), str(paths.BASE_MODEL), str(paths.adapter(KEY)),
                   "${survey.instrument}", "${survey.personas}"),
             outs=(str(paths.survey_raw(KEY)),), reports=(str(paths.survey_report(KEY)),)),
    Contract("evaluate", "fidelity metrics of every corpus against real held-out posts", False,
             # generate.filters: the post-filters external corpora go through with `filter: true`
             params=("communities", "evaluate", "generate.filters"),
             deps=(str(paths.PREPARED), str(paths.GENERATED)),
             reports=(str(paths.METRICS_DIR), str(paths.PLOTS_DIR))),
    Contract("attribute", "score real held-out posts under every adapter and the base: likelihood matrix, "
                          "attribution (also `hivelm attribute FILE` for any posts)", False,
             params=("communities", "instruct.templates", "instruct.system_prompt", "base_model.device",
                     "base_model.dtype", "base_model.attn_implementation", "base_model.num_threads",
                     "attribute.template_id", "attribute.max_length", "attribute.batch_size",
                     "attribute.statistics", "attribute.mixed_adapters", "attribute.max_posts_per_community"),
             # not attribute.temperature: only `hivelm attribute FILE` reads it
             deps=(str(paths.PREPARED), str(paths.BASE_MODEL), str(paths.ADAPTERS), "${instruct.templates}"),
             reports=(str(paths.ATTRIBUTE_DIR),)),
    Contract("summarize", "collect every stage's summary into the metrics file the gate reads", False,
             # evaluate.corpora, prepare.cap_strategy, survey.instrument: which stages are in the pipeline
             # (left_out_stages), the only ones whose outputs it reads
             params=("communities", "survey.instrument", "survey.statistics", "evaluate.corpora",
                     "prepare.cap_strategy", "report.small_rows", "report.small_posts"),
             deps=(str(paths.PREPARE_STATS), str(paths.GENERATE_STATS), str(paths.METRICS_DIR),
                   str(paths.SURVEY_REPORTS), str(paths.ATTRIBUTE_DIR)),
             reports=(str(paths.METRICS), str(paths.SURVEY_PLOT)), metrics=(str(paths.HEADLINE),)),
    Contract("report", "write the self-contained HTML report", False,
             params=("communities", "base_model.source", "report", "survey.instrument", "tracking.experiment",
                     "evaluate.corpora", "prepare.cap_strategy"),
             deps=(str(paths.METRICS), str(paths.METRICS_DIR), str(paths.SURVEY_REPORTS),
                   str(paths.GENERATE_STATS), str(paths.PREPARE_STATS), str(paths.BASE_MODEL),
                   str(paths.ADAPTERS), str(paths.GENERATED), str(paths.ATTRIBUTE_DIR)),
             outs=(str(paths.REPORT),)),
)
STAGES = {contract.name: contract for contract in CONTRACTS}

MODEL_STAGES = ("base_model", "instruct", "tune", "generate", "survey", "attribute")
"""Stages that exist to make and question our own models: dvc.yaml leaves them out when evaluate compares
only external corpora (evaluate.corpora: [], evaluate.external: [...]), unless prepare needs the base model
(prepare.cap_strategy: lowest_perplexity)."""


def left_out_stages(cfg) -> tuple[str, ...]:
    """Names of the stages dvc.yaml leaves out under `cfg`: the survey when no instrument is declared
    (survey.instrument: null), and the model stages when only external corpora are evaluated."""
    no_survey = ("survey",) if cfg.survey.instrument is None else ()
    if cfg.evaluate.corpora:
        return no_survey
    keep_base = cfg.prepare.cap_strategy == "lowest_perplexity"
    return tuple(name for name in MODEL_STAGES if not (keep_base and name == "base_model"))


def keyed_input_files(cfg) -> dict[str, list[tuple[str, str]]]:
    """Per stage, (params key, file) for each input file that the params name (beyond `${data.path}`):
    prepare reads data.extra_sources; evaluate reads the external corpora, one file per community where the
    path has a {community} slot. `hivelm run` checks they exist before DVC runs, naming the key."""
    communities = list(cfg.communities)
    external = [(f"evaluate.external[{index}].path" + (f" ({{community}} = {c})" if c else ""), file)
                for index, spec in enumerate(cfg.evaluate.external) for c, file in spec.files(communities).items()]
    return {"prepare": [(f"data.extra_sources[{index}].path", source.path)
                        for index, source in enumerate(cfg.data.extra_sources)],
            "evaluate": external}


def named_input_files(cfg) -> dict[str, list[str]]:
    """Per stage, the input files that the params name (keyed_input_files): each is a DVC dependency of the
    stage that reads it, so editing one in place makes that stage stale (report takes each external file's
    provenance and hash from evaluate's summary)."""
    return {stage: list(dict.fromkeys(file for _, file in keyed)) for stage, keyed in keyed_input_files(cfg).items()}


def producer(path: str) -> str | None:
    """The stage that writes artifact `path` (or the folder holding it), as `hivelm run` names it:
    'tune@keto' for a fanned-out stage; None when no stage declares it."""
    parts = Path(path).parts
    for contract in CONTRACTS:
        for out in contract.produced:
            declared = Path(out).parts
            if len(declared) > len(parts):
                continue
            matched = [a if a != KEY else b for a, b in zip(declared, parts)]
            if tuple(matched) == parts[:len(declared)]:
                keys = [b for a, b in zip(declared, parts) if a == KEY]
                return contract.name + (f"@{keys[0]}" if keys else "")
    return None


def rerun_hint(path: str | Path) -> str:
    """What rebuilds artifact `path`: 'rerun `hivelm run` (stage tune@keto)'."""
    stage = producer(str(path))
    return f"rerun `hivelm run` (stage {stage})" if stage else "restore it"


def overlaps(a: str, b: str) -> bool:
    """Whether one path is the other or lies inside it (`${key}` matches any community)."""
    a, b = a.replace(KEY, "*"), b.replace(KEY, "*")
    return any(fnmatch.fnmatchcase(x, y) or fnmatch.fnmatchcase(x, y + "/*") for x, y in ((a, b), (b, a)))


def left_out_outputs(cfg) -> dict[str, str]:
    """{path: stage} of every output of the stages dvc.yaml leaves out under `cfg`. Files there come from an
    earlier pipeline (the demo's committed attribute results, say), so no stage reads or shows them."""
    left_out = left_out_stages(cfg)
    return {out: c.name for c in CONTRACTS if c.name in left_out for out in c.produced}


def in_pipeline(path: str | Path, left_out: dict[str, str]) -> bool:
    """Whether `path` (relative to the project root) is not an output of a left-out stage (`left_out_outputs`)."""
    return not any(overlaps(Path(path).as_posix(), out) for out in left_out)


def stale_files(left_out: dict[str, str], root: Path = Path(".")) -> dict[str, str]:
    """{path: stage} of the left-out stages' outputs that exist under `root` (a folder ends in `/`): stale,
    reported as such."""
    found = {}
    for out, stage in left_out.items():
        for match in sorted(root.glob(out.replace(KEY, "*"))):
            found[match.relative_to(root).as_posix() + ("/" if match.is_dir() else "")] = stage
    return found
