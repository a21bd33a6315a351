"""`hivelm panel`: ask every community's model and the untuned base at once, in a local web page.

    hivelm panel                       # http://127.0.0.1:7860, Ctrl-C stops it
    hivelm panel --port 8000 --params configs/ci/params.yaml

A question, or any item of the configured instrument (survey.instrument), goes to the base model with each
community's adapter switched on in turn and with every adapter off (the untuned baseline); the answers appear
side by side, one column per community. It is the pipeline's own code, so what the panel shows is what the
pipeline measures:
  - models: the base loaded once (models.load_base), every community's adapter attached to it as a peft named
    adapter, switched with `set_adapter` and `models.for_corpus` exactly as the generate and survey stages do;
  - prompts: a survey persona (survey.personas, the {community} slot filled with communities.<key>.name) then
    the question; an instrument item is asked with the survey's own prompt records (survey.answers);
  - sampling: generation.sample_texts with a DecodingConfig (defaults: generate.decoding for a question,
    survey.decoding for an item; temperature, max new tokens, samples and seed can be changed in the page),
    every column's prompts in one stream of mixed-adapter batches (peft's `adapter_names`), each prompt with its
    own random stream, so a column's answers are the ones its model gives when asked alone;
  - option probabilities of an item: the survey's loglik mode (survey.answers.option_probabilities), the
    softmax of each option's mean token log-likelihood, averaged over the personas (respondents).
Sample i is answered by persona i (cycling through the persona file), the same personas for every model, so
columns differ only in the model.

The page uses gradio (the optional `panel` extra: `pip install -e ".[panel]"`), with its analytics off, no
share link, no server-side rendering and its bundled fonts: the page loads nothing from outside this machine.
It binds to 127.0.0.1 unless --host says otherwise, and answers only requests whose Host header names this
machine (`HostCheck`: a web page elsewhere cannot reach it through DNS rebinding). A question may have at most
MAX_QUESTION_CHARS characters: a longer one is refused before any model runs (one question holds the only
queue slot while it is answered).
"""

from __future__ import annotations

import html
import ipaddress
import logging
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace

from hivelm import paths
from hivelm.errors import HiveError

log = logging.getLogger(__name__)

BASE = "untuned"
"""The column of the base model with every adapter off: the generate and survey stages' `untuned` corpus."""
MAX_QUESTION_CHARS = 2000
"""The longest question the panel answers: a page of text. A 100,000-word question held the queue for over
five minutes at 3 GB of memory."""
FREE_QUESTION = ""
"""The item dropdown's value for "ask the question typed in the box"."""
CONTENT_WARNING = (
    "**Content warning.** These models are tuned to speak like online communities, which may include "
    "eating-disorder communities. Their answers can reproduce harmful content about food, weight and bodies. "
    "They are research instruments, not advice. Everything runs on this machine; nothing is sent anywhere."
)


def missing_adapter_message(community: str) -> str:
    where = paths.adapter(community)
    return f"no adapter for {community} at {where}: run `hivelm tune --community {community}`"


def adapter_present(community: str) -> bool:
    return (paths.adapter(community) / "adapter_config.json").is_file()


@dataclass
class ModelAnswer:
    """One column's result: sampled answers as (persona id, text), and for an item the option probabilities
    {"a. option text": p} (mean over personas of the survey's loglik distribution) and each sampled answer
    as the survey's generate mode reads it (survey.parse: a letter, a number, letters, or UNPARSEABLE)."""

    column: str
    answers: list[tuple[str, str]] = field(default_factory=list)
    probabilities: dict[str, float] | None = None
    parsed: list | None = None
    note: str | None = None


@dataclass
class Settings:
    """What the page lets a user change; the rest of the decoding block comes from params.yaml."""

    temperature: float
    max_new_tokens: int
    samples: int
    seed: int


class Panel:
    """The loaded models and everything a question needs; `ask` is the page's one action.

    Generation switches adapters on one shared model, so questions are answered one at a time (a lock).
    `mixed`: sample every column in mixed-adapter batches (`sample`); False samples one column after the other
    (bench/panel.py compares the two)."""

    def __init__(self, cfg, model, tokenizer, present: list[str], missing: list[str], instrument, personas,
                 mixed: bool = True):
        self.mixed = mixed
        self.cfg, self.model, self.tokenizer = cfg, model, tokenizer
        self.present, self.missing = present, missing
        self.instrument, self.personas = instrument, personas
        self.lock = threading.Lock()

    @property
    def columns(self) -> list[str]:
        """Every configured community in params order, then the untuned base."""
        return [*self.cfg.communities, BASE]

    def title(self, column: str) -> str:
        return "untuned base model" if column == BASE else f"{column} ({self.cfg.community(column).name})"

    def defaults(self, item_id: str) -> Settings:
        """Decoding defaults from params: survey.decoding / survey.seed / survey.samples_per_item for an item,
        generate.decoding / generate.seed / generate.samples_per_topic for a free question."""
        if item_id:
            s = self.cfg.survey
            return Settings(s.decoding.temperature, s.decoding.max_new_tokens, s.samples_per_item, s.seed)
        g = self.cfg.generate
        return Settings(g.decoding.temperature, g.decoding.max_new_tokens, g.samples_per_topic, g.seed)

    def decoding(self, item_id: str, settings: Settings):
        """The params decoding block with the page's temperature and max new tokens (validated like params)."""
        from hivelm.config import ConfigError

        block = self.cfg.survey.decoding if item_id else self.cfg.generate.decoding
        decoding = replace(block, temperature=float(settings.temperature), max_new_tokens=int(settings.max_new_tokens))
        try:
            decoding.validate()
        except ConfigError as err:
            raise HiveError(f"decoding: {err}") from None
        return decoding

    def system_prompt(self, item_id: str) -> str:
        return self.cfg.survey.system_prompt if item_id else self.cfg.generate.system_prompt

    def prompts(self, column: str, question: str, item_id: str, samples: int, base_as: str = "") -> list[dict]:
        """Sample i's {system, prompt}: persona i (cycling) speaking as the column's community (the base
        model gets the same persona prompts as the community adapters: one persona per column would be a
        second difference between columns). For an item: the survey's generate-mode prompt records."""
        from hivelm.survey.answers import build_item_prompts
        from hivelm.survey.instrument import select_items

        name = self.community_name(column, base_as)
        personas = [self.personas[i % len(self.personas)] for i in range(samples)]
        if item_id:
            records = build_item_prompts(select_items(self.instrument, [item_id]), self.personas, name, 1,
                                         mode="generate", system_prompt=self.system_prompt(item_id))
            by_persona = {r["persona_id"]: r for r in records}
            return [by_persona[p.id] for p in personas]
        return [{"persona_id": p.id, "system": self.system_prompt(item_id),
                 "prompt": f"{p.render(community=name)}\n\n{question.strip()}"} for p in personas]

    def community_name(self, column: str, base_as: str = "") -> str:
        """The {community} slot of the persona: the column's community, and for the base model `base_as` (a
        community key; default the first), as the pipeline's untuned baseline gets the persona prompt of the
        community it stands in for."""
        if column == BASE:
            column = base_as or next(iter(self.cfg.communities))
        return self.cfg.community(column).name

    def item_probabilities(self, column: str, item_id: str, base_as: str = "") -> dict[str, float]:
        """The survey's loglik answer to the item: per persona the softmax over its options, averaged."""
        from hivelm.survey.answers import build_item_prompts, distributions_from, option_probabilities, reply
        from hivelm.survey.instrument import select_items

        one_item = select_items(self.instrument, [item_id])
        records = build_item_prompts(one_item, self.personas, self.community_name(column, base_as), 1, mode="loglik",
                                     system_prompt=self.cfg.survey.system_prompt)
        distributions = distributions_from(records, option_probabilities(
            self.model, self.tokenizer, records, self.cfg.survey.decoding.batch_size))
        item = self.instrument.items[item_id]
        per_persona = [d[item_id] for d in distributions.values()]
        return {reply(o): sum(d[o.letter] for d in per_persona) / len(per_persona) for o in item.options}

    def switched_to(self, column: str):
        """The model for a column: the community's adapter active, or every adapter off for the base."""
        from hivelm.models import for_corpus

        if column == BASE:
            return for_corpus(self.model, BASE)
        self.model.set_adapter(column)
        return for_corpus(self.model, "finetuned")

    def ask(self, question: str, item_id: str, settings: Settings, progress=None,
            base_as: str = "") -> list[ModelAnswer]:
        """Every column's answers to a question (or an instrument item), in `columns` order; the base model
        speaks as a member of `base_as` (a community key; default the first)."""
        question = (question or "").strip()
        if len(question) > MAX_QUESTION_CHARS:
            raise HiveError(f"the question has {len(question):,} characters; the panel answers at most "
                            f"{MAX_QUESTION_CHARS:,}")
        if not item_id and not question:
            raise HiveError("type a question or pick an instrument item")
        if item_id and item_id not in self.instrument.items:
            raise HiveError(f"unknown item {item_id!r} of {self.instrument.path}")
        samples = int(settings.samples)
        if samples < 1:
            raise HiveError("samples per model must be at least 1")
        if base_as and base_as not in self.cfg.communities:
            raise HiveError(f"unknown community {base_as!r}; known: {list(self.cfg.communities)}")
        decoding = self.decoding(item_id, settings)
        runnable = [c for c in self.columns if c == BASE or c in self.present]
        total, done = len(runnable) * (samples + (1 if item_id else 0)), 0
        probabilities = {}

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, total, "every model: sampling")

        with self.lock:
            for column in runnable if item_id else []:
                if progress:
                    progress(done, total, f"{self.title(column)}: option probabilities")
                with self.switched_to(column):
                    probabilities[column] = self.item_probabilities(column, item_id, base_as)
                done += 1
            asked = {column: self.prompts(column, question, item_id, samples, base_as) for column in runnable}
            texts = self.sample(asked, decoding, int(settings.seed), advance)
        results = []
        for column in self.columns:
            if column not in runnable:
                results.append(ModelAnswer(column, note=missing_adapter_message(column)))
                continue
            answer = ModelAnswer(column, answers=[(p["persona_id"], t) for p, t in zip(asked[column], texts[column])],
                                 probabilities=probabilities.get(column))
            if item_id:
                from hivelm.survey.parse import parse_answer

                answer.parsed = [parse_answer(self.instrument.items[item_id], t) for t in texts[column]]
            results.append(answer)
        return results

    def sample(self, asked: dict[str, list[dict]], decoding, seed: int, progress=None) -> dict[str, list[str]]:
        """Each column's answers to its prompts. With `mixed` (the default), every column's rows in one stream
        of batches, each routed to its own adapter (peft's mixed-adapter batches, the base as models.BASE): a
        few samples per model fill a batch together instead of one small batch per model. Each prompt keeps
        its own random stream (generation.sample_texts), so the texts are those of one column at a time."""
        from hivelm.generation import sample_texts
        from hivelm.models import BASE as BARE

        if not (self.mixed and self.present):  # without adapters the bare base is the only model
            answers = {}
            for column, prompts in asked.items():
                with self.switched_to(column):
                    answers[column], _ = sample_texts(self.model, self.tokenizer, prompts, decoding, seed, progress)
            return answers
        flat = [p for prompts in asked.values() for p in prompts]
        names = [BARE if column == BASE else column for column, prompts in asked.items() for _ in prompts]
        texts, _ = sample_texts(self.model, self.tokenizer, flat, decoding, seed, progress, names)
        answers, start = {}, 0
        for column, prompts in asked.items():
            answers[column], start = texts[start:start + len(prompts)], start + len(prompts)
        return answers


# ------------------------------------------------------------------------------------------------ loading

def require_base_model() -> None:
    if not (paths.BASE_MODEL / "config.json").is_file():
        raise HiveError(f"no base model at {paths.BASE_MODEL}: run `hivelm base_model` (or `hivelm run`)")


def load_models(cfg, communities: list[str]):
    """(model, tokenizer, present, missing): the base loaded once with every community's adapter that
    exists attached as a peft named adapter (named by the community key); missing ones are listed."""
    from hivelm import models

    require_base_model()
    present = [c for c in communities if adapter_present(c)]
    missing = [c for c in communities if c not in present]
    model, tokenizer = models.load_base(cfg.base_model)
    if present:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(paths.adapter(present[0])), adapter_name=present[0])
        for community in present[1:]:
            model.load_adapter(str(paths.adapter(community)), adapter_name=community)
        model.eval()
    return model, tokenizer, present, missing


def load_panel(cfg) -> Panel:
    from hivelm.survey.instrument import load_instrument, resolve_instrument_path
    from hivelm.templates import load_templates

    if cfg.survey.instrument is None:
        from hivelm.config import ConfigError

        raise ConfigError("hivelm panel asks an instrument's items too: set survey.instrument "
                          "(e.g. configs/instruments/swed.yaml)")
    instrument = load_instrument(resolve_instrument_path(cfg.survey.instrument), cfg.survey.instrument_text,
                                 cfg.survey.criterion_params)
    personas = load_templates(cfg.survey.personas, slots=("community",), minimum=1)
    model, tokenizer, present, missing = load_models(cfg, list(cfg.communities))
    for community in missing:
        log.warning("%s", missing_adapter_message(community))
    return Panel(cfg, model, tokenizer, present, missing, instrument, personas)


# ------------------------------------------------------------------------------------------------ page

MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def literal(text: str) -> str:
    """Model text as Markdown that shows it verbatim: HTML and Markdown syntax escaped, so an answer can
    neither style the page nor make the browser fetch anything (an image link would leave the machine)."""
    return "  \n   ".join(MARKDOWN_PUNCTUATION.sub(r"\\\1", html.escape(line, quote=False)) for line in text.splitlines())


def answers_markdown(answer: ModelAnswer) -> str:
    """Sampled answers as a numbered list: the persona that asked, the answer shown verbatim, and for an item
    what the survey reads in it."""
    if not answer.answers:  # a missing adapter: its column already says so
        return ""
    readings = [f" → **{literal(str(p))}**" for p in answer.parsed] if answer.parsed else [""] * len(answer.answers)
    return "\n".join(f"{i}. *{persona}*: {literal(text) or '(empty answer)'}{reading}"
                     for i, ((persona, text), reading) in enumerate(zip(answer.answers, readings), start=1))


def item_markdown(panel: Panel, item_id: str) -> str:
    from hivelm.survey.answers import ANSWER_LINES, item_block

    if not item_id:
        return ""
    item = panel.instrument.items[item_id]
    return f"**{item.id}** ({item.type})\n\n" + item_block(item).replace("\n", "  \n") + \
        f"  \n*{ANSWER_LINES[item.type]}*"


def build_page(panel: Panel):
    """The gradio Blocks page: content warning, question or item, decoding settings, one column per model."""
    import gradio as gr

    g, s = panel.cfg.generate.decoding, panel.cfg.survey.decoding
    start = panel.defaults(FREE_QUESTION)
    items = [("(the question typed above)", FREE_QUESTION)] + [
        (f"{item.id}: {item.stem[:90]}", item.id) for item in panel.instrument.items.values()]
    with gr.Blocks(title="HiveLM panel", analytics_enabled=False) as page:
        gr.Markdown("# HiveLM panel: ask every community at once")
        gr.Markdown(CONTENT_WARNING, elem_id="content-warning")
        if panel.missing:
            gr.Markdown("\n".join(f"- {html.escape(missing_adapter_message(c))}" for c in panel.missing),
                        elem_id="missing-adapters")
        with gr.Row():
            with gr.Column(scale=3):
                question = gr.Textbox(label="Question", lines=2, placeholder="What do you eat on a hard day?",
                                      info="asked when no instrument item is picked below",
                                      max_length=MAX_QUESTION_CHARS)
                item = gr.Dropdown(items, value=FREE_QUESTION, label="Instrument item",
                                   info=f"or ask an item of {panel.instrument.name} ({panel.instrument.path})")
                item_view = gr.Markdown()
                base_as = gr.Dropdown([(f"{panel.cfg.community(c).name} ({c})", c) for c in panel.cfg.communities],
                                      value=next(iter(panel.cfg.communities)), label="The untuned base speaks as",
                                      info="the community named in the base model's persona prompt")
            with gr.Column(scale=2):
                item_start = panel.defaults(next(iter(panel.instrument.items), FREE_QUESTION))
                temperature = gr.Slider(0.05, max(2.0, start.temperature, item_start.temperature), step=0.05,
                                        value=start.temperature, label="Temperature")
                max_new_tokens = gr.Slider(1, max(512, start.max_new_tokens, item_start.max_new_tokens), step=1,
                                           value=start.max_new_tokens, label="Max new tokens")
                samples = gr.Slider(1, max(32, start.samples, item_start.samples), step=1, value=start.samples,
                                    label="Samples per model")
                seed = gr.Number(value=start.seed, precision=0, label="Seed")
                gr.Markdown(f"From params: top_p {g.top_p}, top_k {g.top_k}, repetition penalty "
                            f"{g.repetition_penalty} (generate.decoding; an item uses survey.decoding: top_p "
                            f"{s.top_p}, top_k {s.top_k}, repetition penalty {s.repetition_penalty}).")
        ask = gr.Button("Ask every community", variant="primary", elem_id="ask")
        # The progress bar of a long generation shows here (gradio draws it over an event's outputs).
        status = gr.Textbox(label="Status", interactive=False, elem_id="status", max_lines=1)
        bars, texts = [], []
        with gr.Row(equal_height=False):
            for column in panel.columns:
                with gr.Column(min_width=220, elem_classes=["panel-column"], elem_id=f"column-{column}"):
                    gr.Markdown(f"### {html.escape(panel.title(column))}")
                    if column != BASE and column in panel.missing:
                        gr.Markdown(f"**{html.escape(missing_adapter_message(column))}**",
                                    elem_classes=["panel-missing"])
                    bars.append(gr.Label(label="option probabilities (loglik)", visible=False, show_heading=False,
                                         elem_classes=["panel-probabilities"]))
                    texts.append(gr.Markdown(elem_classes=["panel-answers"]))

        def on_item(item_id):
            d = panel.defaults(item_id)
            return item_markdown(panel, item_id), d.temperature, d.max_new_tokens, d.samples, d.seed

        item.change(on_item, item, [item_view, temperature, max_new_tokens, samples, seed])

        def on_ask(question_text, item_id, temperature_value, tokens, samples_value, seed_value, base_key,
                   progress=gr.Progress()):  # noqa: B008 (gradio's way to ask for a progress bar)
            settings = Settings(temperature_value, int(tokens), int(samples_value), int(seed_value or 0))

            def report(done, total, description):
                progress((done, total), desc=description, unit="answers")

            started = time.perf_counter()
            try:
                results = panel.ask(question_text, item_id, settings, report, base_key)
            except HiveError as err:
                raise gr.Error(str(err), print_exception=False) from None  # a user mistake, not a bug
            answered = sum(1 for r in results if r.answers)
            done = (f"{answered} models answered {item_id or 'the question'} in "
                    f"{time.perf_counter() - started:.1f} s (seed {settings.seed})")
            labels = [gr.Label(value=r.probabilities, visible=r.probabilities is not None,
                               num_top_classes=len(r.probabilities or {}) or None) for r in results]
            return [done, *labels, *[answers_markdown(r) for r in results]]

        inputs = [question, item, temperature, max_new_tokens, samples, seed, base_as]
        outputs = [status, *bars, *texts]
        ask.click(on_ask, inputs, outputs, show_progress="full")
        question.submit(on_ask, inputs, outputs, show_progress="full")
    return page


# ------------------------------------------------------------------------------------------------ serving

def host_of(header: str) -> str:
    """The host name of a Host header, without its port: 'localhost:7860' -> 'localhost', '[::1]:7860' ->
    '::1' (RFC 9110 section 7.2)."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def allowed_hosts(host: str) -> frozenset[str]:
    """Host names the panel answers to besides IP literals: localhost, the --host it binds, and for a bind to
    every interface (0.0.0.0, ::) this machine's own names."""
    names = {"localhost", host}
    if host in ("0.0.0.0", "::", ""):
        names |= {socket.gethostname(), socket.getfqdn()}
    return frozenset(name.lower().rstrip(".") for name in names if name)


class HostCheck:
    """ASGI middleware: 403 for a request whose Host header is neither an IP address nor an allowed name.

    DNS rebinding: a page on another site re-points its own name at 127.0.0.1 and drives the local server
    from the user's browser, its requests carrying that name as Host (https://en.wikipedia.org/wiki/DNS_rebinding).
    An IP address cannot be re-pointed, so IP literals pass. The MLflow UI refuses the same way."""

    def __init__(self, app, allowed: frozenset[str]):
        self.app, self.allowed = app, allowed

    def permits(self, header: str) -> bool:
        host = host_of(header.strip()).lower().rstrip(".")
        try:
            ipaddress.ip_address(host)
            return True
        except ValueError:
            return host in self.allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            header = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
            if not self.permits(header):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                from starlette.responses import PlainTextResponse

                response = PlainTextResponse(f"403 Forbidden: Host {header!r} is not this machine", status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def main(cfg, host: str = "127.0.0.1", port: int = 7860) -> int:
    # Before gradio is imported: its analytics (and the version check that rides on them) stay off.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from hivelm.ui import is_loopback, port_in_use

    logging.getLogger("httpx").setLevel(logging.WARNING)  # gradio pinging its own local server, per start
    require_base_model()  # before the slow imports: a fresh checkout learns what to run first at once
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise HiveError('the panel needs gradio: pip install -e ".[panel]" (or `make setup`)') from None
    if not is_loopback(host):
        print(f"warning: --host {host} lets every machine that can reach this one use the panel's models "
              "without authentication", file=sys.stderr)
    if port_in_use(host, port):
        raise HiveError(f"port {port} on {host} is already in use: stop what listens there or pass another --port")
    panel = load_panel(cfg)
    page = build_page(panel)
    page.queue(default_concurrency_limit=1)  # one shared model: questions are answered in turn
    print(f"HiveLM panel: http://{host}:{port}  (Ctrl-C to stop)", flush=True)
    try:
        from starlette.middleware import Middleware

        page.launch(server_name=host, server_port=port, share=False, ssr_mode=False, pwa=False, mcp_server=False,
                    enable_monitoring=False, footer_links=[], quiet=True, show_error=True,
                    app_kwargs={"middleware": [Middleware(HostCheck, allowed=allowed_hosts(host))]})
    except KeyboardInterrupt:
        pass
    finally:
        page.close()
    return 0
