"""The `hivelm` command: one subcommand per pipeline stage, plus `run` for the whole pipeline.

Stages are imported only when they run, so `hivelm --help` starts instantly (no torch, no MLflow).
Overrides: any trailing `key=value` replaces that key of params.yaml for this invocation.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import warnings

from hivelm import paths, processes
from hivelm.contracts import STAGES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hivelm", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, stage in STAGES.items():  # one subcommand per stage contract (hivelm/contracts.py)
        sub = commands.add_parser(name, help=stage.help, description=stage.help)
        if stage.per_community:
            target = sub.add_mutually_exclusive_group(required=True)
            target.add_argument("--community", help="community key from params.yaml")
            target.add_argument("--all", action="store_true", help="every community in turn")
        sub.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override a params.yaml key")
    attribute = commands.choices["attribute"]  # also `hivelm attribute FILE`: any posts, not the stage
    attribute.usage = "hivelm attribute [FILE] [--out PATH] [KEY=VALUE ...]"
    attribute.epilog = ("hivelm attribute FILE [--out PATH] [KEY=VALUE ...]: each post of FILE (CSV / JSONL, "
                        "columns as data.columns) -> its distribution over communities, written beside FILE")
    attribute.add_argument("--out", metavar="PATH",
                           help="with FILE: where the distributions go (default: beside FILE, NAME.attribution.jsonl)")
    run = commands.add_parser("run", help="run the whole pipeline (dvc repro) under one parent MLflow run",
                              description="Run `dvc repro` under one parent MLflow run; extra arguments "
                                          "after -- go to dvc repro (e.g. hivelm run -- --force).")
    run.add_argument("--name", help="MLflow name of the pipeline run")
    run.add_argument("--no-check", action="store_true", help="skip `hivelm check` (run it first by default)")
    run.add_argument("dvc_args", nargs=argparse.REMAINDER, help="arguments for dvc repro")
    ui = commands.add_parser("ui", help="start the MLflow UI on this project's runs (Ctrl-C stops it)")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    panel = commands.add_parser("panel", help="a local web page that asks every community's model at once",
                                description="Ask every community's adapter and the untuned base a question or an "
                                            "instrument item, answers side by side (needs the `panel` extra).")
    panel.add_argument("--host", default="127.0.0.1")
    panel.add_argument("--port", type=int, default=7860)
    panel.add_argument("--params", default=argparse.SUPPRESS, help="params file (default: params.yaml)")
    render = commands.add_parser("dvc-yaml", help="render dvc.yaml from the stage contracts (or --check it)",
                                 description="Write dvc.yaml from src/hivelm/contracts.py, the stages' imports and "
                                             "the params (external corpus files; with only external corpora, no "
                                             "model stages); --check exits 1 when the committed file differs.")
    render.add_argument("--check", action="store_true", help="compare instead of writing")
    check = commands.add_parser("check-metrics", help="fail if the pipeline's metrics regressed against BASE",
                                description="Compare the pipeline's metrics file with BASE (a git revision or a "
                                            "baseline file) under the rules file; exit 1 on a regression.")
    check.add_argument("base", metavar="BASE", help="git revision or baseline JSON file")
    check.add_argument("--rules", default="configs/metric_rules.yaml")
    check.add_argument("--metrics", default=str(paths.METRICS))
    score = commands.add_parser("survey-score", help="score answers collected elsewhere (people, other models)",
                                description="ANSWERS maps each respondent to {item id: letter, number or list}.")
    score.add_argument("--instrument", default="swed", help="instrument name (configs/instruments/) or file")
    score.add_argument("answers", metavar="ANSWERS")
    score.add_argument("--json", action="store_true", help="also print the scores as JSON")
    sample = commands.add_parser("harm-sample", help="write a blinded harm-annotation sample of the generated corpora")
    sample.add_argument("--out-dir", default=str(paths.HARM_DIR))
    sample.add_argument("--per-corpus", type=int, default=20, help="posts per community and corpus (paper: 20)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--force", action="store_true", help="replace an existing sample and key")
    ingest = commands.add_parser("harm-ingest", help="agreement and harm rates from two or more annotators' files")
    ingest.add_argument("annotations", nargs="+", metavar="ANNOTATION_CSV")
    ingest.add_argument("--key", default=str(paths.HARM_KEY))
    ingest.add_argument("--out", default=str(paths.HARM_REPORT))
    ingest.add_argument("--rule", choices=("all", "half", "any"), default="all",
                        help="when an item counts as harmful: all annotators (paper), at least half, or any")
    ingest.add_argument("--resamples", type=int, default=1000)
    _project_commands(commands)
    _plant_command(commands)
    _recover_command(commands)
    _manners(parser, commands)
    return parser


def _project_commands(commands) -> None:
    """`hivelm init` (hivelm/project.py) and `hivelm check` (hivelm/check.py)."""
    init = commands.add_parser("init", help="make a project of your own for your posts (git, DVC, params.yaml)",
                               description="Make DIR a new project for the posts file: its own git and DVC repo, "
                                           "params.yaml for the corpus (columns given or inferred from the "
                                           "header, communities from its community column), its own MLflow "
                                           "experiment and report title (DIR's name), dvc.yaml rendered for it.")
    init.add_argument("dir", metavar="DIR", help="the new project folder (outside this checkout)")
    init.add_argument("--posts", required=True, metavar="FILE", help="your posts (CSV, JSONL, JSON or Parquet)")
    for field in ("text", "community", "post_id", "author_id", "timestamp"):
        init.add_argument(f"--{field.replace('_', '-')}-column", metavar="COLUMN",
                          help=f"column holding the {field.replace('_', ' ')} (default: inferred from the header)")
    init.add_argument("--content-warning", metavar="TEXT", help="shown above the report's numbers (default: none)")
    init.add_argument("--instrument", metavar="NAME",
                      help="a survey instrument of configs/instruments (e.g. swed); default: no survey")
    init.add_argument("--base-model", metavar="SOURCE",
                      help="base_model.source: a local folder or a hub id (default: the demo's embedded SmolLM2)")
    commands.add_parser("check", help="say in seconds, from the params and posts, whether every stage can run",
                        description="Count what later stages will need (posts per community after cleaning, "
                                    "held-out posts against evaluate.min_posts, tuning posts, survey items) with "
                                    "prepare's own functions, no model; exit 2 with one line per problem and the "
                                    "setting that fixes it. `hivelm run` runs it first.")


def _plant_command(commands) -> None:
    """`hivelm plant` (hivelm/plant.py): its argument types are plain functions there (no heavy import)."""
    from hivelm import plant

    sub = commands.add_parser("plant", help="write a synthetic corpus with a known, planted rate of SWED "
                                            "attitudes per community (does the pipeline find it?)",
                              description="Write seeded synthetic communities that differ only in the rate of "
                                          "posts expressing the attitudes SWED measures, with each post's label "
                                          "in a side file beside --out (posts.csv: posts.labels.csv); print "
                                          "each community's share kept by prepare's cleaning and "
                                          "deduplication (--params' prepare settings). Same seed, same bytes.")
    sub.add_argument("--rates", type=plant.rates_argument, default="0,0.5,1", metavar="RATES",
                     help="planted rate per community: 0,0.5,1 (named group_a, group_b, ...) or "
                          "calm=0.1,tense=0.4")
    sub.add_argument("--per-community", type=plant.count_argument, default=150, metavar="N",
                     help="posts per community")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--out", metavar="CSV", help=f"where the corpus goes (default: data.path of {plant.PARAMS}, "
                                                  "the planted pipeline's params)")
    sub.add_argument("--opposite-share", type=plant.share_argument, default=0.5, metavar="SHARE",
                     help="of the posts without the attitude, the share that express its opposite (the rest: "
                          "no attitude)")
    sub.add_argument("--templates", default=plant.VOCABULARY, metavar="YAML", help="the vocabulary")
    sub.add_argument("--force", action="store_true", help="replace an --out that is not a planted corpus")


def _recover_command(commands) -> None:
    """`hivelm recover` (hivelm/recovery.py): outside the pipeline, so no stage contract and no DVC stage."""
    from hivelm.plant import VOCABULARY
    from hivelm.recovery import RECOVERY

    sub = commands.add_parser("recover", help="measure whether the pipeline recovered a planted corpus's truth "
                                              "(after hivelm plant and hivelm run)",
                              description="Compare a finished planted project's survey, generations, likelihoods "
                                          "and dose-response with the planted rates of its labels file; write "
                                          f"{RECOVERY} and print each measure with its verdict. "
                                          "No model is loaded.")
    sub.add_argument("--labels", metavar="CSV", help="the planted labels file (default: beside data.path, "
                                                     "<stem>.labels.csv; the corpus is read beside it)")
    sub.add_argument("--out", metavar="PATH", help=f"where the measures go (default: {RECOVERY})")
    sub.add_argument("--templates", default=VOCABULARY, metavar="YAML",
                     help="the planted corpus's vocabulary (hivelm plant --templates), which the stance detector "
                          "learns from")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default in --help, except where there is nothing to show (None, False, [])
    or the help text already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default:" in text or not _shows(action.default):
            return text
        return super()._get_help_string(action)


def _shows(default) -> bool:
    """Whether a default says something in --help (0 does; None, False, [] and SUPPRESS do not)."""
    return not (default is None or default is False or default == [] or default == argparse.SUPPRESS)


def _manners(parser: argparse.ArgumentParser, commands) -> None:
    """What every subcommand shares: `--params` after the subcommand too (`hivelm run --params FILE`, as
    before it), a description and the defaults in its --help; and `hivelm --version`."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("hivelm")
    except PackageNotFoundError:  # run from a source tree that was never installed
        installed = "unknown"
    parser.add_argument("--version", action="version", version=f"hivelm {installed}")
    parser.formatter_class = _HelpFormatter
    helps = {action.dest: action.help for action in commands._choices_actions}
    for name, sub in commands.choices.items():
        sub.formatter_class = _HelpFormatter
        sub.description = sub.description or helps.get(name)
        for action in sub._actions:  # argparse shows no default for an option without help text
            if action.help is None and _shows(action.default):
                action.help = "(default: %(default)s)"
        if not any("--params" in action.option_strings for action in sub._actions):
            # SUPPRESS: absent after the subcommand, the value given before it (or params.yaml) stands
            sub.add_argument("--params", default=argparse.SUPPRESS, help="params file (default: params.yaml)")


STAGE_ENV = {
    # OpenMP threads that finish their share of a matmul sleep instead of spinning for the next one
    # (https://gcc.gnu.org/onlinedocs/libgomp/OMP_005fWAIT_005fPOLICY.html). A spinning thread burns user time
    # that is not arithmetic and takes the core from the threads that have work; on a loaded 2-core machine
    # bench/survey.py --loglik-only took half the wall time and 0.47x the user time with it (docs/explanation/
    # performance.md). Set for every stage (hand-run, or under `hivelm run`: DVC, the stage server and its forks
    # inherit this process's environment); a value the user set wins.
    "OMP_WAIT_POLICY": "PASSIVE",
}


def main(argv: list[str] | None = None) -> int:
    """`hivelm ...` as a shell, a script or DVC starts it. Under DVC (`hivelm run`), a stage ends with DVC and
    is forked from the warm stage server when one runs (hivelm/processes.py)."""
    args = build_parser().parse_args(argv)
    _handle_signals()
    if os.environ.get("DVC_STAGE"):
        if not processes.end_with_dvc():
            print(f"hivelm {args.command}: interrupted (dvc exited)", file=sys.stderr)
            return 130
        if args.command in STAGES:  # under `hivelm run`: fork the stage from the warm server
            code = processes.delegate(sys.argv[1:] if argv is None else argv)
            if code is not None:
                return code
    return execute(args)


def forked_main(argv: list[str]) -> int:
    """A stage forked by the stage server (hivelm/forkserver.py): its client, DVC's child, already ends with
    DVC and forwards its signals, so the command runs here at once."""
    args = build_parser().parse_args(argv)
    _handle_signals()
    return execute(args)


def _handle_signals() -> None:
    # SIGTERM (kill, DVC, a scheduler) unwinds like Ctrl-C: context managers end MLflow runs as KILLED,
    # `run` and `ui` stop their child process groups, and partial outputs stay in temporary paths. SIGINT is
    # handled whatever we inherited: a background job of a non-interactive shell (`hivelm run &` in a script)
    # starts with it ignored, and `kill -INT` would do nothing (an ignored signal stays ignored across exec).
    if threading.current_thread() is threading.main_thread():  # signal() refuses other threads
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, processes.interrupt)


def execute(args: argparse.Namespace) -> int:
    """The parsed command, run in this process; a HiveError is one line and exit 2."""
    # Telemetry would try to reach the network at start-up; users can still opt in explicitly.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for key, value in STAGE_ENV.items():  # before torch loads its OpenMP runtime, which reads them once
        os.environ.setdefault(key, value)
    # peft calls a transformers API deprecated in v5, once per model load: noise, not a user problem.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from hivelm.config import load_config
    from hivelm.errors import HiveError, redact, storage_cause

    try:
        if args.command in ("init", "check"):
            return _project_main(args)
        if args.command == "run":
            from hivelm import check, pipeline

            cfg = load_config(args.params)
            pipeline.check_input_files(cfg)  # named files first: each error names its key
            if not args.no_check:
                check.require(cfg)  # an early no: before DVC, the tracking store or any model
            return pipeline.run(cfg, args.dvc_args, args.name)
        if args.command == "ui":
            from hivelm import ui

            return ui.main(load_config(args.params), args.host, args.port)
        if args.command == "panel":
            from hivelm import panel

            return panel.main(load_config(args.params), args.host, args.port)
        if args.command == "check-metrics":
            from hivelm import gate

            return gate.main(args.base, args.rules, args.metrics)
        if args.command == "survey-score":
            from hivelm.survey.collected import survey_score_main

            return survey_score_main(args.instrument, args.answers, args.json)
        if args.command == "harm-sample":
            from hivelm import annotation

            cfg = load_config(args.params)
            annotation.main_sample(cfg, out_dir=args.out_dir, per_corpus=args.per_corpus, seed=args.seed,
                             overwrite=args.force)
            return 0
        if args.command == "harm-ingest":
            from hivelm import annotation

            annotation.main_ingest(args.annotations, key=args.key, out=args.out, rule=args.rule, resamples=args.resamples)
            return 0
        if args.command == "plant":
            from hivelm import plant

            out = args.out or load_config(plant.PARAMS).data.path
            return plant.main(args.rates, args.per_community, args.seed, out, args.opposite_share,
                              args.templates, load_config(args.params).prepare, args.params, args.force)
        if args.command == "recover":
            from hivelm import recovery

            return recovery.main(load_config(args.params), args.labels, args.out, args.templates)
        if args.command == "dvc-yaml":
            from hivelm import dvcfile

            return dvcfile.main(args.check, cfg=load_config(args.params))
        files = _post_files(args.overrides) if args.command == "attribute" else []
        if files:
            from hivelm.stages.attribute import cli_main

            return cli_main(args.params, files, [a for a in args.overrides if a not in files], args.out)
        if getattr(args, "out", None):
            raise HiveError("--out goes with a FILE of posts: hivelm attribute FILE --out PATH")
        cfg = load_config(args.params, args.overrides)
        if not STAGES[args.command].per_community:
            return run_stage(args.command, cfg, None)
        return run_stage(args.command, cfg, list(cfg.communities) if args.all else [args.community])
    except HiveError as err:
        print(f"hivelm {args.command}: error: {redact(error_line(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        name = str(err) or "SIGINT"
        print(f"hivelm {args.command}: interrupted ({name})", file=sys.stderr)
        # the shell's convention for a command ended by a signal: 130 after Ctrl-C, 143 after SIGTERM
        return 128 + signal.Signals.__members__.get(name, signal.SIGINT)
    except Exception as err:  # a full disk or a read-only folder is the user's to fix: say so, not a traceback
        cause = storage_cause(err)
        if cause is None:
            raise
        print(f"hivelm {args.command}: error: {cause}", file=sys.stderr)
        return 2
    return 0


def _project_main(args) -> int:
    if args.command == "check":
        from hivelm import check
        from hivelm.config import load_config

        return check.main(load_config(args.params))
    from hivelm import project

    given = {field: getattr(args, f"{field}_column") for field in project.GUESSES}
    return project.main(args.dir, args.posts, given, args.content_warning, args.instrument, args.base_model)


def error_line(err: Exception) -> str:
    """The one line a user sees for `err`; for a broken artifact, with the stage that rewrites it."""
    from hivelm.contracts import rerun_hint
    from hivelm.errors import ArtifactError

    return f"{err}: {rerun_hint(err.path)}" if isinstance(err, ArtifactError) else str(err)


def _post_files(arguments: list[str]) -> list[str]:
    """`hivelm attribute FILE`: a positional is a FILE of posts when it names an existing file (which may be
    called my=posts.csv) or has no '='; the others are key=value overrides."""
    return [arg for arg in arguments if "=" not in arg or os.path.isfile(arg)]


def run_stage(name: str, cfg, communities: list[str] | None) -> int:
    """The recipe of every stage: open its MLflow run with its declared params, hand it a config in which
    only those params can be read, run it (once per community of `communities` for a fanned-out stage)."""
    from hivelm import tracking
    from hivelm.artifacts import recover, sweep_stale
    from hivelm.declared import declared, declared_params

    contract = STAGES[name]
    module = importlib.import_module(contract.module)
    for community in communities or [None]:
        if community is not None:
            cfg.community(community)  # unknown key: a clear error before any run is opened
        recover(contract.artifacts(community))  # a killed writer's half-done swap: the previous set back
        sweep_stale(contract.artifacts(community))  # and the temporary copies it left (a killed base_model: 155 MB)
        with tracking.stage_run(cfg, name, community, lambda c: declared_params(cfg, contract, c)) as run:
            view = declared(cfg, name, contract.params, community)
            module.main(view, run, community) if community is not None else module.main(view, run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
