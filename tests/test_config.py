from pathlib import Path

import pytest

from hivelm.config import ConfigError, HiveConfig, load_config
from hivelm.templates import TemplateError, load_templates

REPO = Path(__file__).resolve().parents[1]
SHIPPED_PARAMS = sorted([REPO / "params.yaml", *REPO.glob("configs/**/params*.yaml"), *REPO.glob("reports/*/params.yaml")])
SHIPPED_TEMPLATES = sorted(REPO.glob("configs/templates/*.yaml"))


@pytest.mark.parametrize("path", SHIPPED_PARAMS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_params_file_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, HiveConfig) and cfg.communities


@pytest.mark.parametrize("path", SHIPPED_TEMPLATES, ids=lambda p: p.name)
def test_every_shipped_template_file_loads(path):
    assert len(load_templates(path, minimum=10)) >= 10  # instruct itself requires 20


def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


MINIMAL = "communities:\n  keto: {label: keto, name: keto cooking}\n"


def test_defaults_fill_everything_not_given(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.prepare.min_chars == 20 and cfg.data.columns.text == "text"
    assert cfg.community("keto").name == "keto cooking"


@pytest.mark.parametrize("text, message", [
    (MINIMAL + "prepare:\n  min_char: 3\n", "prepare.min_char"),
    (MINIMAL + "prepare:\n  min_chars: lots\n", "prepare.min_chars"),
    (MINIMAL + "data:\n  columns:\n    txt: body\n", "data.columns.txt"),
    (MINIMAL + "typo_section: {}\n", "typo_section"),
    (MINIMAL + "prepare:\n  min_chars: 50\n  max_chars: 10\n", "prepare.max_chars"),
    (MINIMAL + "prepare:\n  heldout_fraction: 1.5\n", "prepare.heldout_fraction"),
    (MINIMAL + "prepare:\n  hashtags: sometimes\n", "prepare.hashtags"),
    (MINIMAL + "data:\n  format: xlsx\n", "data.format"),
    (MINIMAL + "data:\n  path: /abs/posts.csv\n", "data.path"),
    ("communities:\n  Keto Diet: {label: keto, name: keto}\n", "communities.Keto Diet"),
    ("communities:\n  keto: {label: keto}\n", "communities.keto.name"),
    ("communities:\n  a: {label: x, name: a}\n  b: {label: x, name: b}\n", "claimed by more than one"),
    ("communities: {}\n", "communities"),
    ("communities: []\n", "communities:"),
    ("communities:\n  \"keto\\n\": {label: keto, name: keto}\n", "communities.'keto\\n'"),
    (MINIMAL + "data:\n  encoding: utf-99\n", "data.encoding: unknown text encoding 'utf-99'"),
    (MINIMAL + "prepare: []\n", "prepare:"),
    (MINIMAL + "tune:\n  learning_rate: .inf\n", "tune.learning_rate: must be a finite number (got inf)"),
    (MINIMAL + "generate:\n  filters:\n    max_perplexity: inf\n", "generate.filters.max_perplexity: must be"),
])
def test_bad_config_names_the_full_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert message in str(err.value) and "params.yaml" in str(err.value)


def test_overrides_replace_keys_and_are_validated(tmp_path):
    path = write(tmp_path, MINIMAL)
    cfg = load_config(path, ["prepare.min_chars=40", "instruct.seed=7"])
    assert cfg.prepare.min_chars == 40 and cfg.instruct.seed == 7
    with pytest.raises(ConfigError, match="prepare.min_chars"):
        load_config(path, ["prepare.min_chars=forty"])
    with pytest.raises(ConfigError, match="prepare.nope"):
        load_config(path, ["prepare.nope=1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(path, ["prepare.min_chars"])


def test_override_errors_name_the_command_line_and_file_errors_the_file(tmp_path):
    path = write(tmp_path, MINIMAL)
    for override, message in (("prepare.min_chars=0", "prepare.min_chars: must be >= 1"),
                              ("prepare.min_chars=700", "prepare.max_chars: must be >= prepare.min_chars"),
                              ("tune.learning_rate=inf", "tune.learning_rate: must be a finite number"),
                              ("communities.running.label=run", "communities.running.name"),
                              ("communities=[]", "communities:")):
        with pytest.raises(ConfigError) as err:
            load_config(path, [override])
        assert str(err.value).startswith(f"command line: {message}"), err.value
    bad_file = write(tmp_path, MINIMAL + "prepare:\n  heldout_fraction: 1.5\n")
    with pytest.raises(ConfigError, match=r"^.*params.yaml: prepare.heldout_fraction"):
        load_config(bad_file, ["prepare.min_chars=30"])


def test_cli_config_errors_exit_2_without_a_traceback(tmp_path, monkeypatch, capsys):
    from hivelm.cli import main as cli

    monkeypatch.chdir(tmp_path)
    write(tmp_path, MINIMAL)
    assert cli(["prepare", "data.encoding=utf-99"]) == 2
    error = capsys.readouterr().err
    assert "hivelm prepare: error: command line: data.encoding: unknown text encoding 'utf-99'" in error


def test_missing_params_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nowhere.yaml: config file not found"):
        load_config(tmp_path / "nowhere.yaml")


def test_unknown_community_lists_the_declared_ones(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    with pytest.raises(ConfigError, match=r"unknown community 'paleo'.*\['keto'\]"):
        cfg.community("paleo")


@pytest.mark.parametrize("body, message", [
    ('  - {id: a, text: "You are in {community}. What would you post?"}\n'
     '  - {id: b, text: "If you were in {community}, what would you post?You are now in {community}."}\n',
     r"exactly once \(found 2\)"),
    ('  - {id: a, text: "What would you post?"}\n', r"exactly once \(found 0\)"),
    ('  - {id: a, text: "In {community} about {topic}?"}\n', "unknown slot"),
    ('  - {id: a, text: "In {community}, post."}\n  - {id: a, text: "As {community}, post."}\n', "repeats"),
])
def test_template_loader_rejects_defects(tmp_path, body, message):
    # The first case is the paper code's defect: two templates glued into one (arXiv 2408.09366, section 4.1; its code's templates).
    path = tmp_path / "t.yaml"
    path.write_text("templates:\n" + body)
    with pytest.raises(TemplateError, match=message):
        load_templates(path)


def test_template_file_must_declare_the_slots_its_stage_fills(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text('slots: [community]\ntemplates:\n  - {id: a, text: "In {community}, post."}\n')
    assert load_templates(path, slots=("community",))[0].render(community="keto") == "In keto, post."
    with pytest.raises(TemplateError, match=r"declares slots \['community'\], but this stage fills"):
        load_templates(path, slots=("community", "topic"))


def test_generated_reference_pages_are_current():
    """docs/configuration.md, docs/reference/cli.md and docs/reference/instruments.md say what config.py, the
    argument parser and the instrument format say now (hivelm.reference)."""
    from hivelm.reference import stale

    assert stale() == [], "regenerate them: python -m hivelm.reference"


@pytest.mark.parametrize("key, value, message", [
    ("generate.decoding.max_new_tokens", 10**9, "generate.decoding.max_new_tokens: must be in [1, 2,048]"),
    ("survey.decoding.max_new_tokens", 10**9, "survey.decoding.max_new_tokens: must be in [1, 2,048]"),
    ("evaluate.statistics.bootstrap_resamples", 10**9, "evaluate.statistics.bootstrap_resamples: must be in"),
    ("survey.statistics.permutations", 10**9, "survey.statistics.permutations: must be in [10, 100,000]"),
    ("prepare.minhash_permutations", 2 * 10**7, "prepare.minhash_permutations: must be in [16, 1,024]"),
    ("generate.samples_per_topic", 10**7, "generate.samples_per_topic: must be in [1, 10,000]"),
    ("survey.samples_per_item", 10**7, "survey.samples_per_item: must be in [1, 10,000]"),
    ("prepare.seed", -1, "prepare.seed: seeds must be in [0, 2**32 - 1]"),
    ("generate.seed", 2**32, "generate.seed: seeds must be in"),
    ("evaluate.statistics.seed", -5, "evaluate.statistics.seed: seeds must be in"),
    ("detect.seeds", [0, 2**32], "detect.seeds: seeds must be in"),
    ("attribute.temperature", 1e-320, "attribute.temperature: must be >= 0.001"),
    ("generate.decoding.temperature", 1e-320, "generate.decoding.temperature: must be >= 0.001"),
    ("tracking.experiment", "x" * 10_000, "tracking.experiment: must be at most 500 characters"),
])
def test_absurd_sizes_seeds_and_names_are_refused(key, value, message):
    """Issue 31, points 8 and 9: each ran for minutes, filled memory, or failed after the MLflow run opened.
    The validation load_config runs, on a config built in memory (OmegaConf's schema costs 0.1 s a load)."""
    from hivelm.config import CommunityConfig, _InvalidValue, _validate_tree, lookup

    cfg = HiveConfig(communities={"keto": CommunityConfig("keto", "keto")})
    _validate_tree(cfg, "")
    parent, name = key.rsplit(".", 1)
    setattr(lookup(cfg, parent), name, value)
    with pytest.raises(_InvalidValue) as err:
        _validate_tree(cfg, "")
    assert message in f"{err.value.key}: {err.value.message}"


def test_a_size_refused_at_load_names_the_command_line_and_key(tmp_path):
    with pytest.raises(ConfigError, match=r"^command line: generate.decoding.max_new_tokens: must be in \[1, 2,048\]"):
        load_config(write(tmp_path, MINIMAL), ["generate.decoding.max_new_tokens=1000000000"])


def test_a_300_character_community_key_is_refused_at_load(tmp_path):
    key = "k" * 300
    with pytest.raises(ConfigError, match="community keys must be at most 64 characters"):
        load_config(write(tmp_path, f"communities:\n  {key}: {{label: keto, name: keto}}\n"))
    assert load_config(write(tmp_path, f"communities:\n  {'k' * 64}: {{label: keto, name: keto}}\n"))


def _alias_bomb(levels: int, indent: str = "  ") -> str:
    """Each level holds ten aliases of the one before: 10**levels values once expanded."""
    lines = [f"{indent}l0: &l0 [" + ",".join(["x"] * 10) + "]"]
    lines += [f"{indent}l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, message", [
    (MINIMAL + "typo_section:\n" + _alias_bomb(9), "params.yaml: typo_section: unknown section"),
    (MINIMAL + "survey:\n  criterion_params:\n" + _alias_bomb(5, "    "),
     "params.yaml: survey.criterion_params.l4: expands to over 100,000 values through YAML aliases"),
    (MINIMAL + "survey:\n  criterion_params:\n    x: &a [*a]\n", "line 5: a YAML alias refers to itself"),
])
def test_yaml_alias_bombs_are_refused_before_they_expand(tmp_path, text, message):
    """Issue 31, point 8: a billion-laughs file under an unknown key hung load_config for 120 s (OmegaConf
    builds every expanded value); now the key is checked, and the expanded size counted, on the node graph."""
    import time

    started = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert message in str(err.value) and time.perf_counter() - started < 2


def test_small_yaml_aliases_still_work(tmp_path):
    text = MINIMAL + "generate:\n  decoding: &d {temperature: 0.5}\nsurvey:\n  decoding: *d\n"
    assert load_config(write(tmp_path, text)).survey.decoding.temperature == 0.5
