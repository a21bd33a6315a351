"""Write docs/paper-comparison.md from this archive and the paper's numbers: every number and verdict on the
page is computed here from the files beside this module, none is typed into the page.

    python reports/paper-sample/page.py            # rewrite docs/paper-comparison.md (make paper-page)
    python reports/paper-sample/page.py --check    # exit 1, naming the first differing line, if it is stale

Reads metrics.json, metrics/*.json, survey/*.json, prepare-stats.json and params.yaml (README.md says what each
holds), and where present run.json (the run record), attribute/ (the likelihood matrix) and the survey's
validity card (metrics.json survey.validity). A part this archive lacks is printed as "not in this archive".
The paper's numbers are declared once, below, with the paper-spec section (../shared/docs/paper-spec.md) they
are quoted from. Prose that interprets is chosen by the computed verdict, so the page cannot claim what the
numbers do not show.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import NamedTuple

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PAGE = REPO / "docs" / "paper-comparison.md"
CORPORA = ("finetuned", "untuned", "in_context")
BASELINES = ("untuned", "in_context")
OUTSIDE = "†"  # an estimate printed outside its own interval
SMALL = "‡"  # a figure resting on fewer posts or rows than summarize's thresholds (metrics.json small_samples)
MISSING = "not in this archive"
WIDTH = 115  # prose line length, as in the other docs pages
INTERVAL = re.compile(r"-?\d+(?:\.\d+)? \[-?\d+(?:\.\d+)?, -?\d+(?:\.\d+)?\]")  # as est() prints it
MARKUP = re.compile(r"^([-+*>#]|\d+[.)])$")  # a word that, starting a line, would make it a list, quote or heading
HOLDS, PARTLY, FAILS = "holds", "partly", "does not hold"


class Paper(NamedTuple):
    """One community in the paper: its name; FID of the in-context and finetuned corpora [spec 5.2, Table 1];
    the finetuned model's WCS and C2-C4 verdicts [spec 6.6, Table 2] and Q5-Q9 majority letters [spec 6.6,
    Table 9]; the repository-only WCS of the untuned and in-context models [spec 6.7]."""
    name: str
    fid_context: float
    fid_finetuned: float
    wcs: float
    c2_c4: str
    q5_q9: str
    wcs_untuned: float
    wcs_context: float


PAPER = {  # communities.<key> of the eating-disorder preset, in the paper's Table 1 order
    "pro_ed": Paper("Pro-ED", 1.16, 0.82, 45.0, "TTT", "bcccc", 58.3, 30.0),
    "body_image": Paper("Body Image", 1.25, 0.74, 15.0, "FFF", "babba", 43.3, 58.3),
    "keto_diet": Paper("Keto & Diet", 1.19, 0.50, 33.3, "TTT", "ccaca", 46.7, 48.3),
    "anti_ed": Paper("Anti-ED", 0.84, 0.42, 13.3, "FFF", "acbaa", 48.3, 58.3),
    "lifestyle": Paper("Healthy Lifestyle & WL", 1.11, 0.82, 13.3, "TFF", "aaaca", 46.7, 58.3),
    "drugs": Paper("Weight Loss Drugs", 0.90, 1.99, 16.7, "FFT", "bbaba", 68.3, 65.0),
}
PAPER_CLASSIFIER = {"heldout_accuracy": 0.74, "finetuned": 0.53, "in_context": 0.40}  # spec 5.1 (weighted F1)
PAPER_HUMAN = (248, 300)  # finetuned post chosen over the in-context one, of 300 triplets [spec 5.5]
PAPER_WCS_THRESHOLD = 47  # the code's high-risk WCS cut-off [spec 6.5]
PAPER_RUN = {  # [spec 1-4]
    "model": "Llama-3-8B-Instruct", "parameters": 8.0e9, "posts": 10_000, "alpaca": "52K",
    "generated": 27_000, "sampled": 6_000, "context_posts": 250, "context_words": 20, "samples_per_item": 50,
    "gpu": "about 3 hours per community on 4 H100s",
}
MODELS = {"embedded:smollm2": ("SmolLM2-135M-Instruct", 135e6)}  # base_model.source -> name, parameters
LEGACY_COMMIT = ("18f5e8d (evaluate, summarize and report; the other stages at a2a284f, whose stage code is "
                 "the same)")  # reports/paper-sample/README.md: the archive from before run.json


# ------------------------------------------------------------------------------------------------ reading

def strict(text: str, where: str):
    def refuse(constant):
        raise ValueError(f"{where}: {constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


class Archive:
    """The archive's files; the optional parts (run.json, attribute/, the validity card) are None when absent."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.metrics = self.json("metrics.json")
        self.params = yaml.safe_load((self.root / "params.yaml").read_text(encoding="utf-8"))
        self.prepare = self.json("prepare-stats.json")["communities"]
        known = self.metrics["fidelity"]["communities"]
        self.communities = [c for c in PAPER if c in known] + [c for c in known if c not in PAPER]
        self.per = {c: self.json(f"metrics/{c}.json") for c in self.communities}
        self.cross = self.json("metrics/cross_community.json")
        self.surveys = {c: self.json(f"survey/{c}.json") for c in self.communities}
        self.run = self.json("run.json") if (self.root / "run.json").is_file() else None
        self.attribute = ({name: self.json(f"attribute/{name}.json") for name in ("matrix", "summary", "attribution")}
                          if (self.root / "attribute").is_dir() else None)
        self.validity = self.metrics.get("survey", {}).get("validity")
        self.small = {f["figure"]: f for f in self.metrics.get("small_samples", [])}

    def json(self, name: str):
        return strict((self.root / name).read_text(encoding="utf-8"), name)

    def name(self, community: str) -> str:
        return PAPER[community].name if community in PAPER else community

    def train(self, community: str) -> int:
        return self.prepare[community]["train"]

    def wcs(self, community: str, corpus: str) -> dict:
        return self.surveys[community]["corpora"][corpus]["criteria"]["C1"]["mean"]


def outside_intervals(node) -> list[str]:
    """Paths of every {value, low, high} in a JSON tree whose value lies outside [low, high]."""
    found = []
    if isinstance(node, dict):
        if {"value", "low", "high"} <= set(node) and None not in (node["value"], node["low"], node["high"]) \
                and not node["low"] <= node["value"] <= node["high"]:
            found.append("")
        for key, value in node.items():
            found += [f".{key}{p}" for p in outside_intervals(value)]
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += [f"[{i}]{p}" for p in outside_intervals(value)]
    return found


def archive_outside(archive: Archive) -> list[str]:
    """Every estimate of the archive's JSON files printed outside its own interval, as file:path."""
    return [f"{p.relative_to(archive.root)}:{where}" for p in sorted(archive.root.rglob("*.json"))
            for where in outside_intervals(strict(p.read_text(encoding="utf-8"), p.name))]


# --------------------------------------------------------------------------------------------- formatting

def num(x, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def est(triple: dict | None, digits: int = 2, small: bool = False) -> str:
    """`value [low, high]`, marked OUTSIDE when the value lies outside its interval."""
    value = (triple or {}).get("value", (triple or {}).get("difference"))
    if value is None:
        return "n/a"
    low, high = triple.get("low"), triple.get("high")
    if low is None or high is None:
        return num(value, digits)
    mark = OUTSIDE if not low <= value <= high else ""
    return f"{num(value, digits)} [{num(low, digits)}, {num(high, digits)}]{mark}{SMALL if small else ''}"


def pvalue(p) -> str:
    return "n/a" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |",
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), ""]


def share_verdict(k: int, n: int) -> str:
    """A claim about every community: holds in all, partly in at least half, else does not hold."""
    return MISSING if not n else HOLDS if k == n else PARTLY if 2 * k >= n else FAILS


def says(verdict: str) -> str:
    """The verdict inside a sentence ("the FID claim partly holds")."""
    return "partly holds" if verdict == PARTLY else verdict


def sure(verdict: str, apart: int, n: int) -> str:
    """A claim that holds on point values but with intervals apart in fewer than half the communities only partly
    holds: the numbers do not show more."""
    return PARTLY if verdict == HOLDS and 2 * apart < n else verdict


def listing(names: list[str]) -> str:
    return "none" if not names else names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def ordinal(k: int | None) -> str:
    if k is None:
        return "n/a"
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def spearman(a: list[float], b: list[float]) -> float | None:
    """Rank correlation (ties get their mean rank); None for fewer than two pairs or a constant side."""
    if len(a) < 2:
        return None
    def ranks(xs):
        order = sorted(range(len(xs)), key=xs.__getitem__)
        out, i = [0.0] * len(xs), 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return out

    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.fmean(ra), statistics.fmean(rb)
    sa = math.sqrt(sum((x - ma) ** 2 for x in ra))
    sb = math.sqrt(sum((y - mb) ** 2 for y in rb))
    return None if not sa or not sb else sum((x - ma) * (y - mb) for x, y in zip(ra, rb)) / (sa * sb)


def data_note(archive: Archive, communities: list[str]) -> str:
    """Training-set sizes of the communities where a claim fails, beside the median community's, and whether
    data size can explain the failure (said only as far as the sizes show it)."""
    median = statistics.median(archive.train(c) for c in archive.communities)
    below = [c for c in communities if archive.train(c) < median]
    said = (listing([f"{archive.name(c)} ({archive.train(c):,} training posts)" for c in communities])
            + f", against {median:,.0f} for the median community")
    if len(below) == len(communities):
        return said + ": all have fewer, so data size is the first suspect"
    if below:
        return said + f": {len(below)} of {len(communities)} {'has' if len(below) == 1 else 'have'} fewer"
    return said + ": none has fewer, so data size alone does not explain it"


def possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


# ------------------------------------------------------------------------------------------------ sections

def model(archive: Archive) -> tuple[str, float | None]:
    source = archive.params["base_model"]["source"]
    name, size = MODELS.get(source, (source, None))
    return name, (PAPER_RUN["parameters"] / size if size else None)


def posts_per_corpus(params: dict) -> int:
    return len(params["generate"]["topics"]) * params["generate"]["samples_per_topic"]


def provenance(archive: Archive) -> list[str]:
    run = archive.run
    if run is None:
        return [f"**Run:** commit {LEGACY_COMMIT}, `hivelm run`. This archive predates the run record "
                f"(`run.json`): machine and stage timings are in its README (`reports/paper-sample/README.md`).", ""]
    stages = ", ".join(f"{stage} {seconds:,.0f} s" for stage, seconds in run["stages"].items())
    return [f"**Run:** commit `{run['commit']}`, `{run['command']}`, {run['wall_s'] / 60:.0f} min wall clock on "
            f"{run['machine']} ({stages}); numbers from `reports/paper-sample/` (its README says what each file "
            f"holds).", ""]


def intro(archive: Archive) -> list[str]:
    p = archive.params
    name, ratio = model(archive)
    smaller = f" ({ratio:.0f}x smaller)" if ratio else ""
    weaker = (f"Where a finding holds here it holds for a model {ratio:.0f}x smaller than the paper's; where it "
              f"fails, model size is the first suspect (section \"Where the run falls short\")." if ratio and ratio > 1
              else "Section \"Where the run falls short\" lists how this run differs from the paper's.")
    return [
        "Chu, He, Dorn and Lerman (arXiv 2408.09366) align Llama-3-8B-Instruct with six eating-disorder communities "
        "and report that the aligned models speak more like their communities than prompted baselines do, and that "
        "a psychometric screen (SWED) administered to the aligned models orders the communities by risk. This page "
        "puts their numbers (from the paper's Tables 1, 2 and 9) next to ours from one run of the eating-disorder "
        "preset on the public sample of their data, claim by claim.", "",
        f"**Read it as a check of the method's machinery, not as a replication.** The paper tuned an 8B model on "
        f"up to {PAPER_RUN['posts']:,} posts per community plus {PAPER_RUN['alpaca']} Alpaca demonstrations, "
        f"generated {PAPER_RUN['generated']:,} posts per community and classified with a finetuned Llama-3. We "
        f"tuned {name}{smaller} with LoRA for {tune_length(p)}, generated {posts_per_corpus(p)} posts per corpus, "
        f"and attributed posts with a TF-IDF classifier. {weaker}", ""]


def tune_length(p: dict) -> str:
    t = p["tune"]
    steps = t.get("max_steps")
    return (f"{steps} steps of batch {t['batch_size']}" if steps and steps > 0
            else f"{t['epochs']} epochs of batch {t['batch_size']}")


def run_section(archive: Archive) -> list[str]:
    p, prep = archive.params, archive.prepare
    counts = sorted(archive.communities, key=lambda c: -prep[c]["after_cap"])
    extra = p["data"].get("extra_sources") or []
    data = (f"the public sample: `{Path(p['data']['path']).name}`"
            + (f" plus {len(extra)} extra sources (params.yaml data.extra_sources)" if extra else "")
            + ", deduplicated together: " + ", ".join(f"{prep[c]['after_cap']:,} {archive.name(c)}" for c in counts)
            + f" posts, {p['prepare']['heldout_fraction']:.0%} of each held out")
    t, g, s = p["tune"], p["generate"], p["survey"]
    name, _ = model(archive)
    modules = "/".join(m.removesuffix("_proj") for m in t["target_modules"])
    survey = archive.surveys[archive.communities[0]]["corpora"]["finetuned"]
    card = "; validity card on" if archive.validity else ""
    fid_method = archive.metrics["fidelity"].get("methods", {}).get("fid", "plug-in FID on all posts")
    rows = [
        ["data", f"1.9M tweets, ≤{PAPER_RUN['posts']:,} per community (lowest perplexity)", data],
        ["base model", f"{PAPER_RUN['model']}, full finetune, 3 epochs, +{PAPER_RUN['alpaca']} Alpaca",
         f"{name} (`{p['base_model']['source']}`), LoRA r {t['lora_r']} on {modules}, {tune_length(p)}, "
         f"lr {t['learning_rate']:g}"],
        ["generations", f"27 topics x 1,000 per community; filtered, {PAPER_RUN['sampled']:,} sampled",
         f"{len(g['topics'])} topics x {g['samples_per_topic']} per community and corpus ({posts_per_corpus(p)}); "
         f"same filter kinds (duplicates, ROUGE-L > {g['filters']['leakage_threshold']} to real posts)"],
        ["baselines", f"in-context: {PAPER_RUN['context_posts']} posts x {PAPER_RUN['context_words']} words in the "
         f"prompt", f"untuned (persona prompt only) and in-context ({g['in_context']['k']} posts x "
         f"{g['in_context']['words']} words)"],
        ["origin classifier", "Llama-3 finetuned on 18,000 real posts, weighted F1",
         "TF-IDF (word 1-2 grams) logistic regression trained on the real training posts, macro-F1"],
        ["FID", "BERTweet embeddings, reference = all communities pooled (a defect)",
         f"`{archive.metrics['fidelity']['scorers']['embedder']['model']}` embeddings, PCA "
         f"{p['evaluate']['fid_dimensions']} fitted on real held-out posts, reference = the community's own held-out "
         f"posts; {fid_method}"],
        ["SWED", f"{PAPER_RUN['samples_per_item']} sampled answers per item, majority vote, once",
         f"{survey['personas']} personas x {len(s['items'] or [])} items ({', '.join(s['items'] or [])}), "
         f"{survey['mode']} mode; mean over personas with a bootstrap {s['statistics']['confidence']:.0%} interval, "
         f"and the majority vote{card}"],
    ]
    # bench/repro.py writes the preset's CPU-sized params itself; the old archive's run copied them in first
    commands = [archive.run["command"]] if archive.run else ["cp reports/paper-sample/params.yaml params.yaml",
                                                             "hivelm run"]
    return ["## The run", "", *provenance(archive),
            *table(["", "paper", "ours (`reports/paper-sample/`)"], rows),
            "The exact command, from a clone beside `../shared` (`reports/paper-sample/README.md` records the rest):",
            "", "```bash", *commands, "```", ""]


def classifier(archive: Archive) -> tuple[str, list[str]]:
    fid = archive.metrics["fidelity"]
    held, corpora = fid["classifier"], fid["corpora"]
    small = {k: f"fidelity.corpora.{k}.macro_f1" in archive.small for k in CORPORA}
    rows = [["real held-out (accuracy)", est(held["heldout_accuracy"])],
            ["real held-out (macro-F1)", est(held["heldout_macro_f1"])],
            *([k, est(corpora[k]["macro_f1"], small=small[k])] for k in CORPORA if k in corpora)]
    ft = corpora["finetuned"]["macro_f1"]
    base = [corpora[k]["macro_f1"] for k in BASELINES if k in corpora]
    above = all(ft["value"] > b["value"] for b in base)
    apart = all(ft["low"] > b["high"] for b in base)
    verdict = HOLDS if above and apart else PARTLY if above else FAILS
    said = {HOLDS: "The finetuned corpora are attributed to the right community above both baselines, whose "
                   "intervals do not overlap it",
            PARTLY: "The finetuned corpora are attributed to the right community above both baselines, but the "
                    "intervals overlap",
            FAILS: "The finetuned corpora are not attributed to the right community more often than both baselines"}
    text = [f"{said[verdict]} (paper: {PAPER_CLASSIFIER['finetuned']:.2f} vs {PAPER_CLASSIFIER['in_context']:.2f}; "
            f"its held-out accuracy {PAPER_CLASSIFIER['heldout_accuracy']:.2f} against our "
            f"{num(held['heldout_accuracy']['value'])}, "
            f"though its F1 is weighted and ours macro over communities of very unequal size)."]
    if ft["value"] < PAPER_CLASSIFIER["finetuned"]:
        name, _ = model(archive)
        text[0] += (f" Absolute values are lower than the paper's: {posts_per_corpus(archive.params)} posts per corpus "
                    f"from {name} against a TF-IDF classifier, not {PAPER_RUN['sampled']:,} from an 8B model "
                    f"against a finetuned Llama-3.")
    lines = ["Origin classifier (trained on the real training posts of all communities; applied to real held-out "
             "posts and to each generated corpus), with bootstrap intervals:", "",
             *table(["corpus", "macro-F1 [interval]"], rows), *text, ""]
    return verdict, lines


def closest_corpus(triples: dict, lower: bool) -> tuple[str | None, bool]:
    """Which corpus has the best value (lowest when `lower`), and whether it is the finetuned one with its interval
    apart from every other's; (None, False) without a finetuned value and another to compare it with."""
    known = {k: t for k, t in triples.items() if t and t.get("value") is not None}
    if "finetuned" not in known or len(known) < 2:
        return None, False
    best = (min if lower else max)(known, key=lambda k: known[k]["value"])
    ft = known["finetuned"]
    apart = best == "finetuned" and all(ft["high"] < t["low"] if lower else ft["low"] > t["high"]
                                        for k, t in known.items() if k != "finetuned")
    return best, apart


def closest_cell(best: str | None, apart: bool) -> str:
    if best is None:
        return "n/a"
    return ("yes, intervals apart" if apart else "yes, intervals overlap") if best == "finetuned" else f"no ({best})"


def fid(archive: Archive) -> tuple[str, str, list[str]]:
    rows, closest, weak = [], [], []
    for c in archive.communities:
        got = archive.per[c]["corpora"]
        triples = {k: got[k]["fid"] for k in CORPORA if k in got and got[k]["fid"]["value"] is not None}
        size = archive.per[c].get("fid_size")
        cells = [est(triples.get(k), 3, f"fidelity.communities.{c}.{k}.fid" in archive.small) for k in CORPORA]
        best, clear = closest_corpus(triples, lower=True)
        closest += [c] if best == "finetuned" else []
        weak += [] if clear or best is None else [c]
        answer = closest_cell(best, clear)
        paper = PAPER.get(c)
        rows.append([archive.name(c), num(paper.fid_context) if paper else "n/a",
                     num(paper.fid_finetuned) if paper else "n/a",
                     size if size is not None else "all posts", *cells, answer])
    n = sum(1 for r in rows if r[-1] != "n/a")
    verdict = sure(share_verdict(len(closest), n), n - len(weak), n)
    paper_better = [c for c, p in PAPER.items() if p.fid_finetuned < p.fid_context]
    paper_exceptions = [c for c in PAPER if c not in paper_better]
    sized = any(archive.per[c].get("fid_size") is not None for c in archive.communities)
    how = ("at one common size per community (the FID size column: posts per set), the median over subsamples "
           "with the central share of those FIDs as its interval" if sized else
           "as the plug-in value on all posts with a basic-bootstrap interval: this archive predates FID at a "
           "common size (issue 13), so the values overestimate the large-sample FID and can fall outside their "
           "intervals")
    lines = [f"FID between sentence embeddings of each corpus and the community's own held-out posts, {how}. The "
             "paper's columns are its BERTweet FID, whose scale is not comparable with ours; only the ordering is:",
             "", *table(["community", "paper context", "paper finetuned", "FID size", "ours finetuned", "ours untuned",
                         "ours in-context", "ours: finetuned closest?"], rows)]
    said = (f"The finetuned corpus is closest to its community in {len(closest)} of {n}"
            + (f", with intervals apart from both baselines in {n - len(weak)}." if closest else "."))
    if weak:
        said += f" Where it is not closest, or only with overlapping intervals: {data_note(archive, weak)}."
    shared = [c for c in paper_exceptions if c in weak]
    if shared:
        said += (f" {listing([archive.name(c) for c in shared])} is the paper's exception too (finetuned "
                 + ", ".join(f"{PAPER[c].fid_finetuned:.2f} vs in-context {PAPER[c].fid_context:.2f}" for c in shared)
                 + "); the paper's finetuned corpus there failed by repetition (paper-spec 4.1).")
    lines += [said, ""]
    return verdict, f"{len(closest)} of {n}; intervals apart in {n - len(weak)}", lines


def attribution_auc(archive: Archive) -> tuple[int, int, list[str]]:
    h = archive.metrics["fidelity"]["communities"]
    rows, better = [], []
    for c in archive.communities:
        got = h[c]
        mark = SMALL if any(f"fidelity.communities.{c}.{k}" in archive.small for k in CORPORA) else ""
        rows.append([archive.name(c) + mark, " / ".join(num(got.get(k, {}).get("attribution")) for k in CORPORA),
                     " / ".join(num(got.get(k, {}).get("auc")) for k in CORPORA)])
        values = [got.get(k, {}).get("attribution") for k in CORPORA]
        if None not in values and values[0] > max(values[1:]):
            better.append(c)
    aucs = [v["auc"] for c in archive.communities for v in h[c].values() if v.get("auc") is not None]
    n = len(archive.communities)
    lines = ["Per community, attribution (share of the corpus the classifier assigns to its own community) and how "
             "easily a real-vs-generated discriminator tells the corpus from real posts (ROC-AUC, 0.5 = "
             "indistinguishable):", "",
             *table(["community", "attribution ft / untuned / in-context", "AUC ft / untuned / in-context"], rows),
             f"Attribution is higher for the finetuned corpus than for both baselines in {len(better)} of {n} "
             f"communities ({listing([archive.name(c) for c in better])})."]
    if aucs:
        lo, hi = min(aucs), max(aucs)
        lines[-1] += (f" Discriminator AUCs span {lo:.2f}-{hi:.2f}"
                      + (": the generated posts are easy to tell from real ones, finetuned or not." if lo >= 0.8
                         else "."))
    lines[-1] += (f" The paper measured authenticity with a human rater instead (finetuned chosen in "
                  f"{PAPER_HUMAN[0]} of {PAPER_HUMAN[1]} pairs); we have no equivalent number.")
    return len(better), n, lines + [""]


def claim_speaks(archive: Archive) -> tuple[dict, list[str]]:
    c_verdict, c_lines = classifier(archive)
    f_verdict, f_detail, f_lines = fid(archive)
    a_k, a_n, a_lines = attribution_auc(archive)
    paper_better = [c for c, p in PAPER.items() if p.fid_finetuned < p.fid_context]
    exceptions = [c for c in PAPER if c not in paper_better]
    exc = "; ".join(f"{PAPER[c].name} is the exception, {PAPER[c].fid_finetuned:.2f} vs {PAPER[c].fid_context:.2f}"
                    for c in exceptions)
    lines = ["## Claim 1: the finetuned model speaks more like its community than the baselines", "",
             f"**Paper:** origin-classifier F1 {PAPER_CLASSIFIER['finetuned']:.2f} on finetuned generations vs "
             f"{PAPER_CLASSIFIER['in_context']:.2f} on in-context ones (held-out accuracy on real posts "
             f"{PAPER_CLASSIFIER['heldout_accuracy']:.2f}); FID to the community lower for the finetuned corpus in "
             f"{len(paper_better)} of {len(PAPER)} communities ({exc}).", "",
             f"**Ours:** the classifier claim {says(c_verdict)}; the FID claim {says(f_verdict)} ({f_detail}); "
             f"per-community "
             f"attribution favours the finetuned corpus in {a_k} of {a_n}.", "",
             *c_lines, *f_lines, *a_lines]
    ft = archive.metrics["fidelity"]["corpora"]["finetuned"]["macro_f1"]
    ic = archive.metrics["fidelity"]["corpora"].get("in_context", {}).get("macro_f1", {})
    return {"classifier": (c_verdict, f"macro-F1 {num(ft['value'])} vs {num(ic.get('value'))} in-context"),
            "fid": (f_verdict, f_detail)}, lines


def claim_tone(archive: Archive) -> tuple[dict, list[str]]:
    emo_rows, tox_rows, emo_k, tox_k, apart, real_share = [], [], [], [], {"emo": 0, "tox": 0}, {}
    for c in archive.communities:
        got = archive.per[c]["corpora"]
        emo = {k: got[k]["emotion_alignment"] for k in CORPORA if k in got}
        tox = {k: got[k]["toxicity"].get("toxicity", {}).get("wasserstein") for k in CORPORA if k in got}
        (best_e, apart_e), (best_t, apart_t) = closest_corpus(emo, lower=False), closest_corpus(tox, lower=True)
        emo_k += [c] if best_e == "finetuned" else []
        tox_k += [c] if best_t == "finetuned" else []
        apart["emo"] += apart_e
        apart["tox"] += apart_t
        hist = archive.per[c]["profiles"]["real"]["toxicity_histogram"].get("toxicity")
        real_share[c] = sum(hist[len(hist) // 2:]) / sum(hist) if hist and sum(hist) else None  # bins 0.5-1.0
        emo_rows.append([archive.name(c), *(est(emo.get(k)) for k in CORPORA), closest_cell(best_e, apart_e)])
        tox_rows.append([archive.name(c), *(est(tox.get(k), 3) for k in CORPORA), closest_cell(best_t, apart_t),
                         num(real_share[c])])
    n = len(archive.communities)
    emo_verdict = sure(HOLDS if 2 * len(emo_k) > n else FAILS, apart["emo"], n)  # the paper: "most communities"
    tox_verdict = sure(HOLDS if 2 * len(tox_k) > n else FAILS, apart["tox"], n)
    emo_detail = f"{len(emo_k)} of {n}; intervals apart in {apart['emo']}"
    tox_detail = f"{len(tox_k)} of {n}; intervals apart in {apart['tox']}"
    known = {c: v for c, v in real_share.items() if v is not None}
    top = max(known, key=known.get) if known else None
    anti = "yes" if top == "anti_ed" else "no"
    lines = ["## Claim 2: the finetuned corpus carries its community's emotional tone and toxicity", "",
             "**Paper (Figs. 3 and 4, numbers not recoverable):** emotion profiles of the finetuned corpus are closer "
             "to the community's than the in-context corpus's for most communities; the finetuned corpus matches the "
             "community's toxicity distribution more closely for most communities; Anti-ED posts are the most toxic.",
             "", f"**Ours:** the emotion claim {says(emo_verdict)} ({emo_detail}); the toxicity claim "
             f"{says(tox_verdict)} ({tox_detail}); Anti-ED the most toxic among real posts: {anti}.", "",
             "Emotion alignment (1 - Jensen-Shannon distance between summed emotion profiles; higher is closer), "
             "with bootstrap intervals:", "",
             *table(["community", "finetuned", "untuned", "in-context", "finetuned closest?"], emo_rows),
             "Toxicity: Wasserstein distance between the corpus's and the real posts' toxicity scores (lower is "
             "closer), and the share of real held-out posts scoring at least 0.5:", "",
             *table(["community", "finetuned", "untuned", "in-context", "finetuned closest?", "real posts ≥ 0.5"],
                    tox_rows)]
    said = (f"The finetuned corpus has the closest emotion profile in {len(emo_k)} of {n} communities ({apart['emo']} "
            f"with its interval apart from both baselines) and the closest toxicity distribution in {len(tox_k)} of "
            f"{n} ({apart['tox']} apart).")
    if top:
        said += (f" Among real posts {archive.name(top)} has the largest share scoring at least 0.5 "
                 f"({num(known[top])})" + (", as in the paper." if anti == "yes" else
                                           f", not Anti-ED ({num(known.get('anti_ed'))}) as in the paper."))
    misses = [c for c in archive.communities if c not in emo_k or c not in tox_k]
    if emo_verdict == FAILS or tox_verdict == FAILS:
        said += f" Where the finetuned corpus is not the closest: {data_note(archive, misses)}."
    return ({"emotion": (emo_verdict, emo_detail), "toxicity": (tox_verdict, tox_detail)},
            lines + [said, ""])


def off_diagonal(m: dict) -> list[tuple[str, str]]:
    return [(r, m["columns"][min(range(len(v)), key=v.__getitem__)]) for r, v in zip(m["rows"], m["fid"])
            if v and m["columns"][min(range(len(v)), key=v.__getitem__)] != r]


def claim_matrix(archive: Archive) -> tuple[dict, list[str]]:
    rows, diag = [], {}
    for corpus in ("real", *CORPORA):
        m = archive.cross.get(corpus)
        if not m or not m.get("rows"):
            continue
        off = off_diagonal(m)
        diag[corpus] = (len(m["rows"]) - len(off), len(m["rows"]))
        mark = SMALL if f"fidelity.cross_community.{corpus}.diagonal_share" in archive.small else ""
        rows.append([corpus, f"{diag[corpus][0]} of {diag[corpus][1]}{mark}",
                     ", ".join(f"{archive.name(r)} -> {archive.name(c)}" for r, c in off) or "none"])
    k, n = diag.get("finetuned", (0, 0))
    verdict = share_verdict(k, n)
    size = archive.cross.get("finetuned", {}).get("size")
    how = f"every cell at a common size of {size} posts" if size else "plug-in values on all posts"
    lines = ["## Claim 3: the cross-community distance matrix is diagonal-dominant", "",
             "**Paper:** implied by Table 1 and its classifier (the finetuned corpus is closest to its own "
             "community); the paper does not print the full matrix.", "",
             f"**Ours:** {verdict} ({k} of {n} finetuned rows). FID of every community's corpus to every community's "
             f"real held-out posts ({how}); a row is \"diagonal\" when its minimum is its own community:", "",
             *table(["corpus", "diagonal rows", "rows whose minimum is elsewhere"], rows)]
    said = []
    real = diag.get("real")
    if real and real[0] < real[1]:
        said.append("Even real posts are not fully diagonal: the real row is the community's training posts "
                    "against every community's held-out posts, and "
                    + listing([f"{possessive(archive.name(r))} ({archive.train(r):,} training posts) is closest to "
                               f"{archive.name(c)}" for r, c in off_diagonal(archive.cross['real'])]) + ".")
    if n:
        base = {b: diag[b][0] for b in BASELINES if b in diag}
        compare = ", ".join(f"{b} {v} of {n}" for b, v in base.items())
        better = all(k > v for v in base.values())
        said.append(f"Finetuned corpora are diagonal in {k} of {n} rows"
                    + (f", more than the baselines ({compare})." if better and base else f" (baselines: {compare})."))
        if verdict != HOLDS:
            drift = [r for r, _ in off_diagonal(archive.cross["finetuned"])]
            said.append(f"The rows that drift: {data_note(archive, drift)}.")
    lines += [" ".join(said), ""]
    return {"matrix": (verdict, f"{k} of {n} finetuned rows")}, lines


def claim_likelihood(archive: Archive) -> tuple[dict, list[str]]:
    head = ["## Claim 4: each adapter prefers its own community's posts (the likelihood matrix)", "",
            "**Paper:** no equivalent: the paper attributes generated posts with a classifier and never asks whether a "
            "tuned model itself prefers its community's real posts.", ""]
    if archive.attribute is None:
        return {"likelihood": (MISSING, "")}, head + [f"**Ours:** {MISSING} (it predates the attribute stage's "
                                                      "`attribute/` folder).", ""]
    m, summary = archive.attribute["matrix"], archive.attribute["summary"]
    cols = m["columns"]
    rows, own_row, own_col = [], [], []
    for i, c in enumerate(m["rows"]):
        gains = m["gain"][i]
        best = max(range(len(gains)), key=gains.__getitem__)
        j = cols.index(c)
        column = [m["gain"][r][j] for r in range(len(m["rows"]))]
        col_best = m["rows"][max(range(len(column)), key=column.__getitem__)]
        own_row += [c] if cols[best] == c else []
        own_col += [c] if col_best == c else []
        rows.append([f"{archive.name(c)} ({m['n'][i]})",
                     est({"value": gains[j], "low": m["low"][i][j], "high": m["high"][i][j]}),
                     f"{archive.name(cols[best])} ({num(gains[best])})", "yes" if cols[best] == c else "no",
                     "yes" if col_best == c else f"no ({archive.name(col_best)})"])
    n = len(m["rows"])
    verdict = share_verdict(len(own_row), n)
    share = est(m["diagonal_share"], small="likelihood.diagonal_share" in archive.small)
    scores = summary.get("attribution", {})
    attr = [[name, est(s.get("accuracy"), small=f"likelihood.attribution.{name}.accuracy" in archive.small),
             est(s.get("macro_f1"), small=f"likelihood.attribution.{name}.macro_f1" in archive.small)]
            for name, s in scores.items()]
    lines = [f"**Ours:** {verdict}: on {len(own_row)} of {n} communities' held-out posts the community's own adapter "
             f"gains most (diagonal share {share}); {len(own_col)} of {n} adapters gain most on their own "
             "community's posts.", "",
             "Gain = mean per-token log-likelihood under the adapter minus under the base model, after the same "
             "prompt naming the community; rows are communities' held-out posts (count in brackets), with bootstrap "
             "intervals over posts:", "",
             *table(["community (posts)", "own adapter's gain", "largest gain (adapter)", "own adapter gains most?",
                     "this adapter gains most on its own posts?"], rows)]
    said = (f"Mean gain of a community's own adapter {num(summary.get('mean_gain_own'))}, of the others "
            f"{num(summary.get('mean_gain_other'))}.")
    if verdict != HOLDS:
        said += (" Where another adapter gains more: "
                 f"{data_note(archive, [c for c in m['rows'] if c not in own_row])}.")
    lines += [said, ""]
    if attr:
        lines += ["Attributing each held-out post to its largest-gain adapter, beside the TF-IDF origin classifier "
                  "on the same posts:", "", *table(["classifier", "accuracy", "macro-F1"], attr)]
        if {"likelihood", "tfidf"} <= set(scores):
            a, b = scores["likelihood"]["macro_f1"], scores["tfidf"]["macro_f1"]
            order = "above" if a["value"] > b["value"] else "below"
            apart = a["low"] > b["high"] or b["low"] > a["high"]
            lines += [f"Attribution by likelihood is {order} the TF-IDF classifier in macro-F1, intervals "
                      f"{'apart' if apart else 'overlapping'}.", ""]
    return {"likelihood": (verdict, f"{len(own_row)} of {n} communities")}, head + lines


def pair_of(contrasts: dict, a: str, b: str) -> tuple[str | None, int]:
    """The contrast key of communities a and b, and the sign turning its difference into a - b."""
    if f"{a} vs {b}" in contrasts:
        return f"{a} vs {b}", 1
    if f"{b} vs {a}" in contrasts:
        return f"{b} vs {a}", -1
    return None, 1


def validity_cell(archive: Archive, c: str, corpus: str) -> str:
    card = (archive.validity or {}).get("communities", {}).get(c, {}).get(corpus)
    if not card:
        return "n/a"
    return card["verdict"] + (f" (failed: {', '.join(card['failed'])})" if card.get("failed") else "")


def claim_survey(archive: Archive) -> tuple[dict, list[str]]:
    comms = archive.communities
    ft = {c: archive.wcs(c, "finetuned")["value"] for c in comms}
    rows = []
    for c in comms:
        corp = archive.surveys[c]["corpora"]
        items = corp["finetuned"]["items"]
        letters = "".join(items[q]["majority"] or "?" if q in items else "-" for q in ("Q5", "Q6", "Q7", "Q8", "Q9"))
        paper = PAPER.get(c)
        rows.append([archive.name(c), num(paper.wcs, 1) if paper else "n/a", paper.q5_q9 if paper else "n/a",
                     est(archive.wcs(c, "finetuned"), 1),
                     f"{num(corp['finetuned']['criteria']['C1'].get('majority'), 1)}, {letters}",
                     *(est(archive.wcs(c, k), 1) if k in corp else "n/a" for k in BASELINES)])
    ranked = sorted(comms, key=lambda c: -ft[c])
    rank = {c: ranked.index(c) + 1 for c in comms}
    n = len(comms)
    pro_top = rank.get("pro_ed") == 1
    anti_low = rank.get("anti_ed", 0) > n / 2
    verdict = HOLDS if pro_top and anti_low else PARTLY if pro_top or anti_low else FAILS
    paper_cs = [c for c in comms if c in PAPER]
    rho = {k: spearman([PAPER[c].wcs for c in paper_cs], [archive.wcs(c, k)["value"] for c in paper_cs])
           for k in CORPORA}
    # Pro-ED above Anti-ED: the finetuned contrast, and whether the validity card supports it.
    contrasts = archive.metrics["survey"]["contrasts"]["finetuned"]
    key, sign = pair_of(contrasts, "pro_ed", "anti_ed")
    above, support = "n/a", MISSING
    if key:
        d = contrasts[key]
        diff = {"difference": sign * d["difference"], "low": min(sign * d["low"], sign * d["high"]),
                "high": max(sign * d["low"], sign * d["high"])}
        above = ("yes" if diff["low"] > 0 else "no, the opposite" if diff["high"] < 0 else "not separated")
        above_text = f"{est(diff, 1)}, p {pvalue(d['p_value'])}"
        card = (archive.validity or {}).get("contrasts", {}).get("finetuned", {}).get(key)
        if card is not None:
            support = "supported" if card["supported"] else "not supported: " + "; ".join(card["reasons"])
    else:
        above_text = "n/a"
    lines = ["## Claim 5: the survey orders the communities (Pro-ED highest WCS, Anti-ED among the lowest)", "",
             f"**Paper (Tables 2 and 9):** WCS of the finetuned models {paper_order()}, from the majority answer of "
             f"{PAPER_RUN['samples_per_item']} samples per item, with no interval "
             "and no check that the answers follow the items' content.", "",
             f"**Ours:** {verdict}: Pro-ED ranks {ordinal(rank.get('pro_ed'))} and Anti-ED {ordinal(rank.get('anti_ed'))} of "
             f"{n} by finetuned WCS; Pro-ED above Anti-ED: {above} ({above_text}); validity card: {support}.", "",
             "WCS mean over personas (each persona's expected score from its option probabilities) with a bootstrap "
             "interval over personas, the majority-vote WCS with its Q5-Q9 answers (the paper's view), and the two "
             "baselines:", "",
             *table(["community", "paper WCS (ft)", "paper Q5-Q9", "ours ft WCS", "ours ft majority WCS, Q5-Q9",
                     "ours untuned WCS", "ours in-context WCS"], rows),
             f"Spearman rank correlation with the paper's WCS over the {len(paper_cs)} communities: "
             + ", ".join(f"{k} {'n/a' if v is None else f'{v:+.2f}'}" for k, v in rho.items()) + ".", ""]
    lines += criteria_table(archive)
    lines += validity_table(archive)
    said = [f"Highest finetuned WCS: {archive.name(ranked[0])} ({num(ft[ranked[0]], 1)}); lowest: "
            f"{archive.name(ranked[-1])} ({num(ft[ranked[-1]], 1)})."]
    if verdict != HOLDS:
        spread = max(ft.values()) - min(ft.values())
        paper_spread = max(p.wcs for p in PAPER.values()) - min(p.wcs for p in PAPER.values())
        name, ratio = model(archive)
        said.append(f"The order is not the paper's. The finetuned WCS span {spread:.1f} points across communities "
                    f"against the paper's {paper_spread:.1f}" + (f", from {name}, {ratio:.0f}x smaller than the "
                                                                 f"paper's model" if ratio else "")
                    + f"; training sets: {data_note(archive, [c for c in ('pro_ed', 'anti_ed') if c in comms])}.")
        if rank.get("anti_ed", n) < rank.get("pro_ed", 0):
            said.append("A plausible reason (untested): a small model learns the vocabulary of eating-disorder talk "
                        "(Anti-ED posts may discuss restriction, bodies and weight too, to oppose them) rather than the "
                        "stance.")
    high = {letter for c in comms for q, item in archive.surveys[c]["corpora"]["finetuned"]["items"].items()
            if q in ("Q5", "Q6", "Q7", "Q8", "Q9") and (letter := item["majority"])}
    if high and all(letter >= "d" for letter in high):
        said.append(f"The finetuned majority-vote letters for Q5-Q9 are all at the high end "
                    f"({', '.join(sorted(high))}) for every community.")
    lines += [" ".join(said), ""]
    return {"survey": (verdict, f"Pro-ED {ordinal(rank.get('pro_ed'))}, Anti-ED {ordinal(rank.get('anti_ed'))} of {n}; "
                                f"rank correlation {num(rho['finetuned'])}"),
            "pro_above_anti": (above, support)}, lines


def paper_order() -> str:
    """The paper's finetuned WCS from highest to lowest, ties joined by '='."""
    ranked = sorted(PAPER.values(), key=lambda p: -p.wcs)
    return ranked[0].name + f" {ranked[0].wcs:.1f}" + "".join(
        f" {'=' if p.wcs == q.wcs else '>'} {p.name} {p.wcs:.1f}" for q, p in zip(ranked, ranked[1:]))


def criteria_table(archive: Archive) -> list[str]:
    rows, agree, total = [], 0, 0
    for c in archive.communities:
        crit = archive.surveys[c]["corpora"]["finetuned"]["criteria"]
        paper = PAPER[c].c2_c4 if c in PAPER else "???"
        cells = []
        for cid, p in zip(("C2", "C3", "C4"), paper):
            if cid not in crit:
                cells.append("n/a")
                continue
            ours = "T" if crit[cid]["majority"] else "F"
            agree += ours == p
            total += p in "TF"
            cells.append(f"{num(crit[cid]['rate']['value'])} ({ours}; paper {p})")
        rows.append([archive.name(c), *cells])
    return ["C2 (weight among the most important things), C3 (at least moderately afraid of gaining 3 lb), C4 (at "
            "least 3 of 4 compensatory behaviours): share of respondents meeting it (finetuned), our majority-vote "
            "verdict and the paper's (Table 2):", "", *table(["community", "C2", "C3", "C4"], rows),
            f"Our majority-vote verdicts agree with the paper's in {agree} of {total}.", ""]


def validity_table(archive: Archive) -> list[str]:
    if not archive.validity:
        return [f"Validity card (does a model's answers follow the items rather than the option layout or chance?): "
                f"{MISSING}.", ""]
    rows, informative, total = [], 0, 0
    for c in archive.communities:
        card = archive.validity.get("communities", {}).get(c, {})
        cells = [validity_cell(archive, c, k) for k in CORPORA]
        informative += sum(cell.startswith("informative") for cell in cells)
        total += sum(cell != "n/a" for cell in cells)
        dose = (card.get("dose") or {}).get("slope")
        rows.append([archive.name(c), *cells, est(dose, 1) if dose else "n/a"])
    ft = [validity_cell(archive, c, "finetuned") for c in archive.communities]
    name, _ = model(archive)
    said = f"{informative} of {total} models are informative."
    if ft and not any(cell.startswith("informative") for cell in ft):
        said += (f" No finetuned model is: their WCS describe how {name} handles a questionnaire, not the community "
                 "(docs: [the validity card](explanation/validity.md)).")
    return ["Validity card ([what it checks](explanation/validity.md)): each model's verdict with the checks it "
            "fails, and the finetuned model's dose-response slope (WCS per unit of adapter scale, interval over "
            "personas):", "", *table(["community", "finetuned", "untuned", "in-context", "dose slope"], rows),
            said, ""]


def claim_baselines(archive: Archive) -> tuple[dict, list[str]]:
    contrasts = archive.metrics["survey"]["contrasts"]
    keys = list(contrasts.get("finetuned", {}))
    shown = [k for k in keys if "pro_ed" in k.split(" vs ") or "anti_ed" in k.split(" vs ")]
    rows = [[" vs ".join(archive.name(c) for c in key.split(" vs ")),
             *(f"{est(contrasts[k][key], 1)}, p {pvalue(contrasts[k][key]['p_value'])}" if key in contrasts.get(k, {})
               else "n/a" for k in CORPORA)] for key in shown]
    alpha = 0.05
    count = {k: sum(v["p_value"] is not None and v["p_value"] < alpha for v in contrasts.get(k, {}).values())
             for k in CORPORA}
    strict_ = {k: sum(v["p_value"] is not None and v["p_value"] < alpha / max(1, len(keys))
                      for v in contrasts.get(k, {}).values()) for k in CORPORA}
    fewer = all(count[b] < count["finetuned"] for b in BASELINES)
    verdict = (HOLDS if fewer and not any(strict_[b] for b in BASELINES) else PARTLY if fewer else FAILS)
    repo = [v for p in PAPER.values() for v in (p.wcs_untuned, p.wcs_context)]
    lines = ["## Claim 6: the untuned and in-context baselines fail to separate communities", "",
             f"**Paper (repository results, not in the paper):** untuned and in-context Llama-3 answer SWED with WCS "
             f"{min(repo):.1f}-{max(repo):.1f} across communities, around the high-risk threshold of "
             f"{PAPER_WCS_THRESHOLD}, "
             "so they do not discriminate; only the finetuned models do.", "",
             f"**Ours:** {verdict}: pairs (of {len(keys)}) with p < {alpha}: "
             + ", ".join(f"{k} {count[k]}" for k in CORPORA)
             + f"; after Bonferroni ({alpha}/{len(keys)}): "
             + ", ".join(f"{k} {strict_[k]}" for k in CORPORA) + ".", "",
             "WCS contrasts between communities (difference of persona means with a bootstrap interval, two-sided "
             "permutation p over personas; the pairs involving Pro-ED or Anti-ED):", "",
             *table(["pair", "finetuned", "untuned", "in-context"], rows)]
    if archive.validity:
        supported = {k: sum(v["supported"] for v in archive.validity.get("contrasts", {}).get(k, {}).values())
                     for k in CORPORA}
        lines += ["Pairs the validity card supports (both models informative, interval excluding 0, sign kept in "
                  "most option orders): " + ", ".join(f"{k} {supported[k]}" for k in CORPORA) + ".", ""]
    else:
        lines += [f"Pairs the validity card supports: {MISSING}.", ""]
    spread = [abs(archive.wcs(c, b)["value"] - 50) for c in archive.communities for b in BASELINES
              if b in archive.surveys[c]["corpora"]]
    said = []
    if spread:
        said.append(f"The untuned and in-context models answer within {max(spread):.1f} points of 50 for every "
                    "community.")
    f1 = archive.metrics["fidelity"]["corpora"]
    if all(b in f1 for b in BASELINES):
        lo = min(f1[b]["macro_f1"]["value"] for b in BASELINES)
        hi = max(f1[b]["macro_f1"]["value"] for b in BASELINES)
        relation = "below" if hi < f1["finetuned"]["macro_f1"]["value"] else "not below"
        said.append(f"In text, the baselines' macro-F1 ({lo:.2f}-{hi:.2f}) is {relation} the finetuned corpus's "
                    f"({f1['finetuned']['macro_f1']['value']:.2f}).")
    if verdict == HOLDS:
        k = archive.params["survey"]["in_context"]["k"]
        said.append(f"A persona prompt, with or without {k} real posts in context, does not separate the "
                    f"communities' answers here; LoRA tuning ({tune_length(archive.params)}) does.")
    lines += [" ".join(said), ""]
    detail = ", ".join(f"{k} {count[k]} of {len(keys)}" for k in CORPORA) + f" at p < {alpha}"
    return {"baselines": (verdict, detail)}, lines


CLAIMS = {  # summary row labels: the paper's finding, per verdict key
    "classifier": f"finetuned corpus attributed to its community more often than in-context (F1 "
                  f"{PAPER_CLASSIFIER['finetuned']:.2f} vs {PAPER_CLASSIFIER['in_context']:.2f})",
    "fid": "finetuned corpus closer to its community (FID)",
    "emotion": "finetuned emotion profile closer to the community's, most communities",
    "toxicity": "finetuned toxicity distribution closer to the community's, most communities",
    "matrix": "cross-community distances diagonal-dominant for finetuned corpora",
    "likelihood": "(not in the paper) each community's adapter gains most on its own posts",
    "survey": "SWED: Pro-ED highest WCS, Anti-ED among the lowest",
    "baselines": "only finetuned models separate communities on SWED",
}


def summary(verdicts: dict) -> list[str]:
    rows = [[label, f"**{verdicts[key][0]}**", verdicts[key][1] or ""] for key, label in CLAIMS.items()]
    above, support = verdicts["pro_above_anti"]
    word = MISSING if above == "n/a" else HOLDS if above == "yes" else FAILS
    rows.append(["SWED: Pro-ED above Anti-ED", f"**{word}**",
                 f"{above}; validity card: {support}"])
    rows.append(["humans find finetuned posts authentic; experts rate harm", "not measured",
                 "no raters; see the discriminator AUCs under claim 1"])
    return ["## Summary", "", *table(["paper finding", "verdict", "ours"], rows)]


def planted(docs: Path) -> list[str]:
    head = ["## What the planted-truth benchmark says", ""]
    if (docs / "planted.md").is_file():
        return head + ["The [planted-truth benchmark](planted.md) plants a known difference between communities and "
                       "checks that HiveLM recovers it: read it before trusting a verdict above.", ""]
    return head + ["The planted-truth benchmark has not been run yet (there is no `docs/planted.md`): nothing yet "
                   "shows whether HiveLM recovers a difference known to be there, so a verdict above that fails may be "
                   "the method's or the tool's.", ""]


def falls_short(archive: Archive) -> list[str]:
    p, comms = archive.params, archive.communities
    name, ratio = model(archive)
    bullets = []
    sharp = {}
    for k in CORPORA:
        per = []
        for c in comms:
            items = archive.surveys[c]["corpora"].get(k, {}).get("items", {})
            if items:
                per.append(statistics.fmean(max(i["shares"].values()) for i in items.values()))
        sharp[k] = per
    items = archive.surveys[comms[0]]["corpora"]["finetuned"]["items"].values()
    uniform = statistics.fmean(1 / len(i["shares"]) for i in items) if items else None
    ft = [archive.wcs(c, "finetuned")["value"] for c in comms]
    size = (f"{name} has {ratio:.0f}x fewer parameters than {PAPER_RUN['model']}." if ratio and ratio > 1
            else f"The base model is {name}.")
    top = max((x for v in sharp.values() for x in v), default=None)
    if uniform is not None and top is not None:
        near = " are close to uniform" if top - uniform < 0.25 else ""
        size += (f" Its SWED answers{near}: the most likely option of an item (the personas' answers averaged) "
                 "holds on average a share of " + ", ".join(f"{min(v):.2f}-{max(v):.2f} ({k})" for k, v in
                                                            sharp.items() if v)
                 + f" across communities, against {uniform:.2f} for a uniform guess.")
    size += (f" The finetuned WCS differ by at most {max(ft) - min(ft):.1f} points on a 0-100 scale; the paper's by "
             f"{max(x.wcs for x in PAPER.values()) - min(x.wcs for x in PAPER.values()):.1f}.")
    bullets.append(("Model size", size))
    t = p["tune"]
    train = {c: archive.train(c) for c in comms}
    big, small = max(train, key=train.get), min(train, key=train.get)
    if t.get("max_steps") and t["max_steps"] > 0:
        seen = t["max_steps"] * t["batch_size"] * t.get("gradient_accumulation_steps", 1)
        bullets.append(("Training", f"{tune_length(p)} ({seen:,} posts: {seen / train[big]:.2f} of "
                                    f"{possessive(archive.name(big))} training set, {seen / train[small]:.1f} epochs "
                                    f"of {possessive(archive.name(small))}), no Alpaca mixing."))
    smallest = min(comms, key=lambda c: archive.prepare[c]["after_cap"])
    bullets.append(("Sample size", f"The public sample has {archive.prepare[smallest]['after_cap']:,} "
                                   f"{archive.name(smallest)} posts ({archive.prepare[smallest]['heldout']:,} held "
                                   "out); "
                                   f"the paper had up to {PAPER_RUN['posts']:,} per community."))
    dropped: dict[str, int] = {}
    generated = 0
    for corpora in archive.metrics.get("generate", {}).values():
        for stats in corpora.values():
            generated += stats["generated"]
            before = stats["generated"]
            for key, value in stats.items():
                if key.startswith("after_"):
                    dropped[key.removeprefix("after_")] = dropped.get(key.removeprefix("after_"), 0) + before - value
                    before = value
    if generated:
        bullets.append(("Generation", f"{posts_per_corpus(p)} posts per community and corpus instead of "
                                      f"{PAPER_RUN['generated']:,}, with {p['generate']['decoding']['max_new_tokens']} "
                                      f"new tokens. Of {generated:,} generated posts the filters dropped "
                                      + ", ".join(f"{v} ({k.replace('_', ' ')})" for k, v in dropped.items()) + "."))
    g = p["generate"]["in_context"]
    bullets.append(("In-context baseline", f"{g['k']} posts of {g['words']} words ({p['survey']['in_context']['k']} "
                                           f"for the survey) instead of {PAPER_RUN['context_posts']}."))
    bullets.append(("Scorers", f"`{archive.metrics['fidelity']['scorers']['embedder']['model']}` embeddings instead of "
                               "BERTweet for FID, a TF-IDF classifier instead of a finetuned Llama-3, and no human or "
                               "expert raters: numbers compare across our corpora, not with the paper's."))
    if archive.run:
        stages = archive.run["stages"]
        bullets.append(("Run time", f"{archive.run['wall_s'] / 60:.0f} minutes of wall clock on "
                                    f"{archive.run['machine']}: "
                                    + ", ".join(f"{s} {v / 60:.1f} min" for s, v in stages.items()) + "."))
    else:
        bullets.append(("Run time", f"{MISSING.capitalize()} as a run record; the archive's README "
                                    "(`reports/paper-sample/README.md`) gives the timings."))
    return ["## Where the run falls short", "", *(f"- **{k}.** {v}" for k, v in bullets), ""]


GPU = """## What a GPU run with a large base model needs

The same preset, with the paper's model and sizes. On one 80 GB GPU (H100), with the weights available locally
or from the Hub (HiveLM never downloads at run time unless `base_model.source` names a hub id):

```bash
cp configs/presets/eating-disorder/params.yaml params.yaml
dvc exp run -n ed-llama3-8b \\
  -S base_model.source=meta-llama/Meta-Llama-3-8B-Instruct -S base_model.dtype=bfloat16 \\
  -S base_model.device=cuda -S tune.bf16=true \\
  -S tune.lora_r=64 -S tune.lora_alpha=128 -S tune.learning_rate=2e-4 -S tune.epochs=3 \\
  -S tune.batch_size=16 -S tune.max_length=256 -S tune.eval_steps=200 \\
  -S generate.samples_per_topic=1000 -S generate.in_context.k=250 -S generate.decoding.max_new_tokens=96 \\
  -S generate.decoding.batch_size=64 -S survey.in_context.k=250 -S survey.decoding.batch_size=64 \\
  -S evaluate.scorers.device=cuda
```

On the full corpus add `-S prepare.cap_strategy=lowest_perplexity` (the paper's quality filter, with the
10,000-post cap the preset already sets). `survey.mode=generate -S survey.samples_per_item=50` reproduces
the paper's sampled answers and majority vote instead of option log-likelihoods. [How to run on a
GPU](how-to/gpu.md) has the details."""


def footnotes(body: str, archive: Archive) -> list[str]:
    notes = []
    if OUTSIDE in body:
        outside = archive_outside(archive)
        kinds = sorted({re.sub(r"\[\d+\]", "", w.split(":")[1]).rsplit(".", 1)[-1] for w in outside})
        notes.append(f"{OUTSIDE} The estimate lies outside its own interval. This archive holds {len(outside)} such "
                     f"estimates ({', '.join(kinds)}): it predates issue 13, when FID was the plug-in value on all "
                     "posts with a basic-bootstrap interval and intervals were not yet extended to their estimate. "
                     "Read the interval, not the value; a run at HEAD reports every estimate inside its interval.")
    if SMALL in body:
        kinds = sorted({(f["unit"], f["threshold"]) for f in archive.small.values()})
        notes.append(f"{SMALL} Rests on few data: " + "; ".join(f"fewer than {t} {u}" for u, t in kinds)
                     + " (report.small_posts, report.small_rows).")
    return ["## Notes", "", *(line for n in notes for line in (n, ""))] if notes else []


def wrap(text: str) -> str:
    """Prose lines wrapped at WIDTH (tables, headings and code as they are), never before a word that would
    start a list, quote or heading."""
    out, code = [], False
    for line in text.split("\n"):
        code ^= line.startswith("```")
        if code or line.startswith(("```", "|", "#", "<!--")) or len(line) <= WIDTH:
            out.append(line)
            continue
        indent, current, lines = "  " if line.startswith("- ") else "", "", []
        glued = INTERVAL.sub(lambda m: m.group(0).replace(" ", "\0"), line)  # an estimate stays on one line
        for word in glued.split(" "):
            if current and len(current) + 1 + len(word) > WIDTH and not MARKUP.match(word):
                lines.append(current)
                current = indent + word
            else:
                current = f"{current} {word}" if current else word
        out += [w.replace("\0", " ") for w in (*lines, current)]
    return "\n".join(out)


def render(root: Path = HERE, docs: Path = REPO / "docs") -> str:
    """The whole page from the archive at `root`; `docs` is where docs/planted.md would be."""
    archive = Archive(root)
    verdicts: dict = {}
    claims: list[str] = []
    for section in (claim_speaks, claim_tone, claim_matrix, claim_likelihood, claim_survey, claim_baselines):
        found, lines = section(archive)
        verdicts |= found
        claims += lines
    body = "\n".join([*intro(archive), *run_section(archive), *claims, *summary(verdicts), *planted(docs),
                      *falls_short(archive), GPU, ""])
    head = ["# HiveLM vs the paper, on the public sample", "",
            "<!-- Generated by reports/paper-sample/page.py from reports/paper-sample/ (make paper-page): edit the "
            "generator, not this page. -->", ""]
    return wrap("\n".join([*head, body, *footnotes(body, archive)])).rstrip("\n") + "\n"


def first_difference(old: str, new: str) -> str | None:
    """'line N: ...' for the first line where `old` differs from `new`, None when equal."""
    if old == new:
        return None
    a, b = old.splitlines(), new.splitlines()
    for i, (x, y) in enumerate(zip(a, b), 1):
        if x != y:
            return f"line {i}: the page has {x!r}, the archive gives {y!r}"
    i = min(len(a), len(b)) + 1
    return f"line {i}: " + ("the page ends early" if len(a) < len(b)
                            else "the page has lines the archive does not give")


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        problem = first_difference(PAGE.read_text(encoding="utf-8") if PAGE.is_file() else "", text)
        if problem:
            print(f"{PAGE.relative_to(REPO)} is stale ({problem}); run `make paper-page`", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
