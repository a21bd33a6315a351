"""`hivelm panel`: a real server (subprocess) over the tiny model with two LoRA adapters and one community
without an adapter, driven in headless Chromium (playwright on the system's Debian chromium)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import REPO, free_port, not_blank

WITH_ADAPTER = ("keto", "running")
WITHOUT_ADAPTER = "body_positivity"
ITEM = "Q5"


def save_random_adapter(base_dir: Path, out: Path, seed: int) -> None:
    """A LoRA adapter with random (not zero) B matrices, so each community's model really differs from
    the base, saved the way `tune` saves one (adapter files only)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from hivelm.models import load_causal_lm

    torch.manual_seed(seed)
    model, _ = load_causal_lm(base_dir)
    lora = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                      task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(str(out))


def panel_project(root: Path, tiny_model_dir: Path) -> Path:
    """Shipped params and configs, three communities (two tuned), small decoding, the tiny model as base."""
    import yaml

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["communities"] = {k: params["communities"][k] for k in (*WITH_ADAPTER, WITHOUT_ADAPTER)}
    params["generate"]["samples_per_topic"] = 2
    params["generate"]["decoding"]["max_new_tokens"] = 8
    params["survey"]["samples_per_item"] = 2
    params["survey"]["decoding"]["max_new_tokens"] = 4
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(REPO / "configs", root / "configs")
    shutil.copytree(tiny_model_dir, root / "models" / "base")
    for seed, community in enumerate(WITH_ADAPTER, start=1):
        save_random_adapter(tiny_model_dir, root / "models" / "adapters" / community, seed)
    return root


def wait_serving(url: str, process: subprocess.Popen, log: Path, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"hivelm panel exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"hivelm panel not serving {url} after {timeout_s:.0f} s:\n{log.read_text()}")


def http_status(url: str, host: str) -> int:
    """The status of a GET of `url` sent with a forged Host header (a DNS-rebinding page's request)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host}), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.fixture
def panel_server(tmp_path, tiny_model_dir):
    from hivelm import ui

    project = panel_project(tmp_path / "project", tiny_model_dir)
    log = tmp_path / "panel.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    for attempt in range(3):
        # free_port's port is free when it returns, not when the panel binds it: the other pytest worker's
        # servers can take it in between, and the panel then exits with its port-in-use error; try another
        port = free_port()
        with log.open("w") as out:
            process = subprocess.Popen([sys.executable, "-m", "hivelm", "panel", "--port", str(port)], cwd=project,
                                       env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_serving(url, process, log)
        except AssertionError:
            ui.stop(process)
            if attempt < 2 and "already in use" in log.read_text():
                continue
            raise
        break
    try:
        yield url, log
    finally:
        ui.stop(process)  # the whole process group, also when the test failed


@pytest.mark.integration
def test_panel_asks_every_community_and_shows_option_probabilities(panel_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, log = panel_server
    assert http_status(url, "evil.example") == 403 and http_status(url, f"localhost:{urlparse(url).port}") == 200
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is missing: `make setup` installs it (Debian package chromium)"
    requested: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.on("request", lambda request: requested.append(request.url))
            page.goto(url)
            expect(page.locator("#content-warning")).to_contain_text("Content warning")
            columns = page.locator(".panel-column")
            expect(columns).to_have_count(len(WITH_ADAPTER) + 2)  # every community, then the untuned base
            missing = f"no adapter for {WITHOUT_ADAPTER} at models/adapters/{WITHOUT_ADAPTER}"
            expect(page.locator(f"#column-{WITHOUT_ADAPTER}")).to_contain_text(missing)
            expect(page.locator(f"#column-{WITHOUT_ADAPTER}")).to_contain_text(f"hivelm tune --community {WITHOUT_ADAPTER}")

            page.locator("#ask").click()  # nothing asked yet: a message, not a stack trace
            expect(page.get_by_text("type a question or pick an instrument item")).to_be_visible()
            page.get_by_label("Question").fill("What do you eat for breakfast?")
            page.locator("#ask").click()
            for column in (*WITH_ADAPTER, "untuned"):  # two samples each (generate.samples_per_topic)
                answers = page.locator(f"#column-{column} .block.panel-answers")
                expect(answers).to_contain_text("p02", timeout=60_000)
                expect(answers.locator("li")).to_have_count(2)
            expect(page.locator(f"#column-{WITHOUT_ADAPTER} .block.panel-answers li")).to_have_count(0)
            expect(page.get_by_label("Status")).to_have_value(re.compile(r"^3 models answered the question in "))

            page.get_by_role("combobox", name="Instrument item").click()
            page.get_by_role("option", name=f"{ITEM}:").first.click()
            expect(page.get_by_label("Max new tokens").first).to_have_value("4")  # survey.decoding's default
            page.locator("#ask").click()
            for column in (*WITH_ADAPTER, "untuned"):
                bars = page.locator(f"#column-{column} .block.panel-probabilities")
                expect(bars).to_be_visible(timeout=60_000)
                expect(bars).to_contain_text("%")
                expect(page.locator(f"#column-{column} .block.panel-answers li")).to_have_count(2, timeout=60_000)
            expect(page.locator(f"#column-{WITHOUT_ADAPTER} .block.panel-probabilities")).to_be_hidden()
            screenshot = tmp_path / "panel.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert not_blank(screenshot)
    if os.environ.get("HIVELM_PANEL_SCREENSHOT"):  # keep the page for a look (README, panel section)
        shutil.copy(screenshot, os.environ["HIVELM_PANEL_SCREENSHOT"])
    outside = {u for u in requested if urlparse(u).scheme in ("http", "https", "ws", "wss")
               and urlparse(u).hostname != "127.0.0.1"}
    assert not outside, f"the page reached outside this machine: {sorted(outside)}"
    assert "Traceback" not in log.read_text()


@pytest.mark.integration
def test_panel_answers_are_what_the_survey_and_generate_code_gives(tmp_path, tiny_model_dir, monkeypatch):
    """The panel's columns (named adapters on one base) match the pipeline's own path (one community's adapter
    loaded by models.load_for_corpora, switched by for_corpus): option probabilities equal the survey stage's
    loglik distributions averaged over personas, and sampled answers, drawn for every column in one
    mixed-adapter batch, equal generation.sample_texts on the persona prompts of one model alone."""
    from dataclasses import replace

    from hivelm import models, panel
    from hivelm.config import load_config
    from hivelm.generation import sample_texts
    from hivelm.survey.answers import administer
    from hivelm.survey.instrument import select_items

    monkeypatch.chdir(panel_project(tmp_path / "project", tiny_model_dir))
    cfg = load_config("params.yaml")
    board = panel.load_panel(cfg)
    assert board.columns == [*WITH_ADAPTER, WITHOUT_ADAPTER, "untuned"]
    assert board.mixed and cfg.generate.decoding.batch_size >= 3 * len(WITH_ADAPTER) + 3  # one batch for all
    on_item = {r.column: r for r in board.ask("", ITEM, board.defaults(ITEM))}
    question = "What do you eat for breakfast?"
    settings = replace(board.defaults(""), samples=3)
    on_question = {r.column: r for r in board.ask(question, "", settings, base_as="running")}
    assert on_question[WITHOUT_ADAPTER].answers == [] and on_question[WITHOUT_ADAPTER].note.startswith(
        f"no adapter for {WITHOUT_ADAPTER}")

    one_item = select_items(board.instrument, [ITEM])
    loglik = replace(cfg.survey, mode="loglik", validity=replace(cfg.survey.validity, enabled=False))  # one order
    for community in WITH_ADAPTER:
        model, tokenizer = models.load_for_corpora(cfg.base_model, community, ["finetuned"])
        name = cfg.community(community).name
        for corpus, column in (("finetuned", community), ("untuned", "untuned")):
            if column == "untuned" and community != WITH_ADAPTER[0]:
                continue  # the base answers items as the first community (the page's default)
            with models.for_corpus(model, corpus):
                surveyed = administer(model, tokenizer, one_item, board.personas, name, loglik)["distributions"]
            expected = [sum(d[ITEM][o.letter] for d in surveyed.values()) / len(surveyed)
                        for o in one_item.items[ITEM].options]
            assert list(on_item[column].probabilities.values()) == pytest.approx(expected, abs=1e-5)
            assert sum(expected) == pytest.approx(1.0)
        assert all(p == "UNPARSEABLE" or p in "abcde" for p in on_item[community].parsed)
        prompts = [{"system": cfg.generate.system_prompt, "prompt": f"{p.render(community=name)}\n\n{question}"}
                   for p in board.personas[:3]]
        with models.for_corpus(model, "finetuned"):
            texts, _ = sample_texts(model, tokenizer, prompts, cfg.generate.decoding, cfg.generate.seed)
        assert on_question[community].answers == list(zip(["p01", "p02", "p03"], texts))
        if community == "running":  # the base spoke as running: its answers are the adapter-off ones
            with models.for_corpus(model, "untuned"):
                texts, _ = sample_texts(model, tokenizer, prompts, cfg.generate.decoding, cfg.generate.seed)
            assert on_question["untuned"].answers == list(zip(["p01", "p02", "p03"], texts))
    assert on_question["keto"].answers != on_question["running"].answers != on_question["untuned"].answers


def test_panel_without_a_base_model_says_what_to_run(tmp_path):
    """A fresh checkout: one line naming the missing model and the command that makes it, exit 2."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-m", "hivelm", "panel", "--port", str(free_port())], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == ("hivelm panel: error: no base model at models/base: run `hivelm base_model` "
                                     "(or `hivelm run`)")


def test_answers_are_shown_verbatim_and_fetch_nothing():
    """Model text is data: Markdown images or HTML in an answer must not render (the browser would fetch
    them from outside the machine), and what the reader sees is the text itself."""
    import html
    import re

    import markdown_it

    from hivelm.panel import ModelAnswer, answers_markdown

    text = ("![x](http://example.com/a.png) <img src=http://example.com/b.png> **bold** # 1. it's \\ not a list"
            "\nline two & more")
    rendered = markdown_it.MarkdownIt().render(answers_markdown(ModelAnswer("keto", [("p01", text)])))
    assert "<img" not in rendered and "<strong>" not in rendered and "<a " not in rendered
    assert rendered.count("<li>") == 1 and "<br />" in rendered
    visible = html.unescape(re.sub(r"<[^>]+>", "", rendered))
    assert text.splitlines()[0] in visible and text.splitlines()[1] in visible


def test_only_hosts_naming_this_machine_are_answered():
    """DNS rebinding: the panel answered a request with any Host header (evil.example re-pointed at
    127.0.0.1 would drive it from the user's browser). IP literals and this machine's names pass."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from hivelm.panel import HostCheck, allowed_hosts

    def hello(request):
        return PlainTextResponse("ok")

    def status(bound: str, host: str) -> int:
        app = Starlette(routes=[Route("/", hello)],
                        middleware=[Middleware(HostCheck, allowed=allowed_hosts(bound))])
        return TestClient(app).get("/", headers={"Host": host}).status_code

    for host in ("localhost:7860", "127.0.0.1:7860", "[::1]:7860", "LOCALHOST", "10.0.0.5:7860"):
        assert status("127.0.0.1", host) == 200, host
    for host in ("evil.example", "evil.example:7860", "localhost.evil.example", "", "127.0.0.1.evil.example"):
        assert status("127.0.0.1", host) == 403, host
    assert status("panel.lab", "panel.lab:7860") == 200 and status("0.0.0.0", socket.gethostname()) == 200


def test_a_question_over_the_limit_is_refused_before_any_model_runs():
    """A 100,000-word question held the panel's only queue slot for over five minutes."""
    from hivelm.errors import HiveError
    from hivelm.panel import MAX_QUESTION_CHARS, Panel, Settings

    board = Panel(cfg=None, model=None, tokenizer=None, present=[], missing=[], instrument=None, personas=[])
    with pytest.raises(HiveError, match=f"at most {MAX_QUESTION_CHARS:,}"):
        board.ask("why " * 100_000, "", Settings(1.0, 8, 1, 0))
