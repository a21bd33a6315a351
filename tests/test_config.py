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
    # The first case is the paper code's defect: two templates glued into one (paper-spec 2.3).
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


def test_configuration_reference_is_current():
    from hivelm.config import reference_markdown

    committed = (REPO / "docs/configuration.md").read_text()
    assert committed == reference_markdown(), "regenerate docs/configuration.md from hivelm.config.reference_markdown()"
