"""`hivelm check`: an early no. What every later stage will need, computed from the params and the posts
alone (no model), in seconds; `hivelm run` runs it before DVC starts.

    hivelm check                 # one line per problem, each naming the setting that fixes it; exit 2

The counts are prepare's own: its reader, its cleaning and deduplication (`clean_community`) and its seeded
split (`split`), so a held-out count here is the one evaluate will see. Checked: each declared community
has posts, enough after cleaning (prepare.min_posts_per_community), enough held out for evaluate
(evaluate.min_posts) and for tuning; each generated corpus can reach evaluate.min_posts; the instrument,
its items and the personas load.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

from hivelm.config import HiveConfig
from hivelm.errors import HiveError

log = logging.getLogger(__name__)


class CheckFailed(HiveError):
    """One or more problems found before any stage ran; the message has one line per problem."""


def community_counts(cfg: HiveConfig) -> tuple[dict[str, dict[str, int]], list[str]]:
    """({community: {kept, train, heldout}}, problems) from the posts, through prepare's pure functions."""
    from hivelm.stages.prepare import RECORD_FIELDS, clean_community, read_sources, split

    labels = {c.label.strip(): key for key, c in cfg.communities.items()}
    frame = read_sources(cfg.data, {c.label for c in cfg.communities.values()})
    frame = frame.assign(community=frame["community"].map(lambda v: v.strip() if isinstance(v, str) else v))
    # counting needs no model: a capped community keeps max_posts_per_community posts under either strategy
    settings = dataclasses.replace(cfg.prepare, cap_strategy="random")
    counts, problems = {}, []
    for label, key in labels.items():
        rows = frame[frame["community"] == label]
        if rows.empty:
            problems.append(f"community {key!r}: no posts labelled {label!r} in {cfg.data.path} (fix "
                            f"communities.{key}.label or data.columns.community)")
            continue
        posts = [{f: row[f] for f in RECORD_FIELDS} | {"community": key} for row in rows.to_dict("records")]
        kept, _ = clean_community(posts, settings)
        if len(kept) < max(2, cfg.prepare.min_posts_per_community):
            problems.append(f"community {key!r}: {len(kept)} of {len(posts)} posts left after cleaning, fewer than "
                            f"prepare.min_posts_per_community={cfg.prepare.min_posts_per_community} (add posts, or "
                            f"lower prepare.min_posts_per_community / prepare.min_chars)")
            continue
        train, heldout = split(kept, cfg.prepare.heldout_fraction, cfg.prepare.seed, key)
        counts[key] = {"kept": len(kept), "train": len(train), "heldout": len(heldout)}
    return counts, problems


def evaluate_problems(cfg: HiveConfig, counts: dict[str, dict[str, int]]) -> list[str]:
    need = cfg.evaluate.min_posts
    problems = []
    for key, n in counts.items():
        if n["heldout"] < need:
            fraction = math.ceil(need / n["kept"] * 100) / 100
            raise_it = (f", raise prepare.heldout_fraction to {fraction:.2f}" if fraction < 0.5 else "")
            problems.append(f"community {key!r}: {n['heldout']} held-out posts (prepare.heldout_fraction="
                            f"{cfg.prepare.heldout_fraction} of {n['kept']}), fewer than evaluate.min_posts={need}: "
                            f"every fidelity number would be 'insufficient' (lower evaluate.min_posts to "
                            f"{max(2, n['heldout'])}{raise_it}, or add posts)")
        if cfg.evaluate.corpora and n["train"] < 2:
            problems.append(f"community {key!r}: {n['train']} training post(s); tuning needs 2 (one to train on, "
                            f"one for its evaluation loss): add posts or lower prepare.heldout_fraction")
    generated = len(cfg.generate.topics) * cfg.generate.samples_per_topic
    if cfg.evaluate.corpora and generated < need:
        problems.append(f"each generated corpus has at most {generated} posts per community (generate.topics x "
                        f"generate.samples_per_topic), fewer than evaluate.min_posts={need} (raise "
                        f"generate.samples_per_topic to {math.ceil(need / len(cfg.generate.topics))})")
    return problems


def survey_problems(cfg: HiveConfig) -> list[str]:
    """The instrument, its selected items and the personas load as the survey stage will load them."""
    if cfg.survey.instrument is None or not cfg.evaluate.corpora:
        return []
    from hivelm.stages.survey import load_survey_inputs

    try:
        instrument, _ = load_survey_inputs(cfg)
    except (HiveError, OSError) as err:
        return [f"survey: {err} (survey.instrument, survey.items, survey.personas; null instrument = no survey)"]
    if not instrument.items:
        return [f"survey: {instrument.path} has no items to administer (survey.items)"]
    return []


def missing_input_files(cfg: HiveConfig, root: Path = Path(".")) -> list[str]:
    """One line per input file that the params name (contracts.keyed_input_files) and that does not exist,
    naming its key (`evaluate.external[1].path`)."""
    from hivelm.contracts import keyed_input_files

    return [f"{key}: {file}: file not found" for keyed in keyed_input_files(cfg).values() for key, file in keyed
            if not (root / file).is_file()]


def problems(cfg: HiveConfig) -> list[str]:
    """Every problem found, each a line naming the setting that fixes it; [] when all later stages can run."""
    try:
        counts, found = community_counts(cfg)
    except HiveError as err:  # the posts cannot be read at all
        return [*missing_input_files(cfg), f"{err} (data.path, data.columns, data.format)"]
    return missing_input_files(cfg) + found + evaluate_problems(cfg, counts) + survey_problems(cfg)


def require(cfg: HiveConfig) -> None:
    """Raise CheckFailed listing every problem; log the counts when there are none."""
    found = problems(cfg)
    if found:
        raise CheckFailed(f"{len(found)} problem(s) before any stage ran:\n  " + "\n  ".join(found))
    log.info("check: the posts and params can feed every stage")


def main(cfg: HiveConfig) -> int:
    require(cfg)
    print("check: ok (posts per community, held-out posts for evaluate, tuning, survey items)")
    return 0
