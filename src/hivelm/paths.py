"""Every artifact path of the pipeline, declared once.

Stages read and write through these functions; `hivelm.contracts` declares each stage's inputs and outputs
with the same functions (called with DVC's `${key}` for fanned-out stages), and dvc.yaml is rendered from
those declarations. Nothing else in src/hivelm spells an artifact path out. Paths are relative to the
project root (the working directory of every stage).
"""

from __future__ import annotations

from pathlib import Path

PREPARED = Path("data/prepared")
PREPARE_STATS = Path("reports/prepare/stats.json")
INSTRUCTIONS = Path("data/instructions")
BASE_MODEL = Path("models/base")
ADAPTERS = Path("models/adapters")
CHECKPOINTS = Path("models/checkpoints")
GENERATED = Path("data/generated")
GENERATE_STATS = Path("reports/generate")
SURVEY_RAW = Path("data/survey")
SURVEY_REPORTS = Path("reports/survey")
METRICS_DIR = Path("reports/metrics")
PLOTS_DIR = Path("reports/plots")
METRICS = Path("reports/metrics.json")
HEADLINE = Path("reports/headline.json")  # the only DVC metrics file: numbers only, a short `dvc metrics show`
SURVEY_PLOT = Path("reports/survey_plot.json")
REPORT = Path("reports/report.html")
DETECT_SUMMARY = Path("reports/detect/summary.json")
HARM_DIR = Path("data/harm")
HARM_REPORT = Path("reports/harm/harm.json")
HARM_KEY = HARM_DIR / "key.csv"
ATTRIBUTE_DIR = Path("reports/attribute")


def train_posts(community: str) -> Path:
    """A community's cleaned training posts (prepare -> instruct, generate, survey, evaluate)."""
    return PREPARED / community / "train.jsonl"


def heldout_posts(community: str) -> Path:
    """A community's real held-out posts, never trained on (prepare -> evaluate)."""
    return PREPARED / community / "heldout.jsonl"


def instructions(community: str) -> Path:
    return INSTRUCTIONS / f"{community}.jsonl"


def base_provenance() -> Path:
    return BASE_MODEL / "hivelm_base.json"


def adapter(community: str) -> Path:
    """Where `tune` writes, and `generate` / `survey` read, a community's LoRA adapter."""
    return ADAPTERS / community


def adapter_weights(community: str) -> Path:
    return adapter(community) / "adapter_model.safetensors"


def checkpoints(community: str) -> Path:
    return CHECKPOINTS / community


def generated(community: str, root: str | Path = GENERATED) -> Path:
    """A community's generated corpora: `<corpus>.jsonl` (kept) and `<corpus>.raw.jsonl` (all, with filter)."""
    return Path(root) / community


def corpus(community: str, name: str, root: str | Path = GENERATED) -> Path:
    return generated(community, root) / f"{name}.jsonl"


def raw_corpus(community: str, name: str) -> Path:
    return generated(community) / f"{name}.raw.jsonl"


def generate_stats(community: str) -> Path:
    return GENERATE_STATS / f"{community}.json"


def survey_raw(community: str) -> Path:
    return SURVEY_RAW / f"{community}.json"


def survey_report(community: str) -> Path:
    return SURVEY_REPORTS / f"{community}.json"


def community_metrics(community: str) -> Path:
    return METRICS_DIR / f"{community}.json"


def fidelity_summary() -> Path:
    """evaluate's headline numbers, merged into reports/metrics.json by summarize."""
    return METRICS_DIR / "summary.json"


def cross_community() -> Path:
    return METRICS_DIR / "cross_community.json"


def plot(name: str) -> Path:
    return PLOTS_DIR / f"{name}.json"


def harm_key(out_dir: str | Path = HARM_DIR) -> Path:
    """The harm sample's private key (item -> community, corpus, generation) beside its packet."""
    return Path(out_dir) / HARM_KEY.name


def attribute_matrix() -> Path:
    """The community x adapter matrix of mean log-likelihood gain, with intervals (attribute -> report)."""
    return ATTRIBUTE_DIR / "matrix.json"


def attribute_summary() -> Path:
    """attribute's headline numbers, merged into reports/metrics.json by summarize as `likelihood`."""
    return ATTRIBUTE_DIR / "summary.json"


def attribute_attribution() -> Path:
    """Attribution of held-out posts by argmax gain and by the TF-IDF classifier: scores and confusion matrices."""
    return ATTRIBUTE_DIR / "attribution.json"


def attribute_gains() -> Path:
    """Every held-out post's gain under every adapter, one JSON line per post (post_id, community, gain per
    adapter: ids and numbers, no text): `hivelm recover`'s label gain joins it to a planted corpus's labels."""
    return ATTRIBUTE_DIR / "heldout.gains.jsonl"


def attribute_confusion(classifier: str) -> Path:
    """One row per held-out post (actual, predicted community) for `dvc plots`' confusion template."""
    return ATTRIBUTE_DIR / f"confusion_{classifier}.json"


def attribution_out(posts: str | Path) -> Path:
    """Where `hivelm attribute FILE` writes FILE's distributions by default: beside it."""
    posts = Path(posts)
    return posts.with_name(f"{posts.stem}.attribution.jsonl")
