"""Print the markdown tables of docs/paper-comparison.md from the numbers in this folder.

    python reports/paper-sample/tables.py > /tmp/tables.md

Reads only files committed here (metrics.json, metrics/*.json, survey/*.json), so every number on the
comparison page can be traced to the run that produced it.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
CORPORA = ("finetuned", "untuned", "in_context")
# communities.<key> of the preset, in the paper's Table 1 order, with the paper's names and numbers.
PAPER = {  # key: (name, FID context, FID finetuned, Table 2 WCS)  [paper-spec 5.2 Table 1, 6.6 Table 2]
    "pro_ed": ("Pro-ED", 1.16, 0.82, 45.0),
    "body_image": ("Body Image", 1.25, 0.74, 15.0),
    "keto_diet": ("Keto & Diet", 1.19, 0.50, 33.3),
    "anti_ed": ("Anti-ED", 0.84, 0.42, 13.3),
    "lifestyle": ("Healthy Lifestyle & WL", 1.11, 0.82, 13.3),
    "drugs": ("Weight Loss Drugs", 0.90, 1.99, 16.7),
}
TABLE9 = {  # paper Table 9 majority answers for Q5-Q9 (paper-spec 6.6)
    "pro_ed": "bcccc", "keto_diet": "ccaca", "body_image": "babba", "anti_ed": "acbaa", "lifestyle": "aaaca",
    "drugs": "bbaba",
}


def load(name):
    return json.loads((HERE / name).read_text())


def fmt(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


def pvalue(p):
    return "n/a" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def interval(m, digits=2):
    return f"{fmt(m['value'], digits)} [{fmt(m['low'], digits)}, {fmt(m['high'], digits)}]"


def main(out=sys.stdout):
    metrics = load("metrics.json")
    fidelity = metrics["fidelity"]
    per = {c: load(f"metrics/{c}.json") for c in PAPER}
    surveys = {c: load(f"survey/{c}.json") for c in PAPER}
    w = out.write

    w("### Origin classifier\n\n| corpus | macro-F1 [95% CI] |\n| --- | --- |\n")
    held = fidelity["classifier"]
    w(f"| real held-out (accuracy) | {interval(held['heldout_accuracy'])} |\n")
    w(f"| real held-out (macro-F1) | {interval(held['heldout_macro_f1'])} |\n")
    for corpus in CORPORA:
        w(f"| {corpus} | {interval(fidelity['corpora'][corpus]['macro_f1'])} |\n")

    w("\n### FID to the community's own held-out posts\n\n"
      "| community | paper context | paper finetuned | ours finetuned | ours untuned | ours in-context | "
      "ours: finetuned closest? |\n| --- | --- | --- | --- | --- | --- | --- |\n")
    for c, (name, p_ctx, p_ft, _) in PAPER.items():
        fid = {k: per[c]["corpora"][k]["fid"] for k in CORPORA if k in per[c]["corpora"]}
        best = min(fid, key=lambda k: fid[k]["value"])
        w(f"| {name} | {p_ctx} | {p_ft} | " + " | ".join(interval(fid[k], 3) if k in fid else "n/a" for k in CORPORA)
          + f" | {'yes' if best == 'finetuned' else 'no (' + best + ')'} |\n")

    w("\n### Attribution to own community and discriminator AUC (real vs generated)\n\n"
      "| community | attribution ft / untuned / in-context | AUC ft / untuned / in-context |\n| --- | --- | --- |\n")
    for c, (name, *_rest) in PAPER.items():
        h = fidelity["communities"][c]
        w(f"| {name} | " + " / ".join(fmt(h[k]["attribution"]) for k in CORPORA) + " | "
          + " / ".join(fmt(h[k]["auc"]) for k in CORPORA) + " |\n")

    cross = load("metrics/cross_community.json")
    w("\n### Cross-community FID: is each row's minimum on its own community?\n\n"
      "| corpus | diagonal share | rows whose minimum is elsewhere |\n| --- | --- | --- |\n")
    for corpus in ("real", *CORPORA):
        m = cross[corpus]
        off = [f"{r} -> {m['columns'][min(range(len(v)), key=v.__getitem__)]}" for r, v in zip(m["rows"], m["fid"])
               if m["columns"][min(range(len(v)), key=v.__getitem__)] != r]
        w(f"| {corpus} | {m['diagonal_share']:.2f} | {', '.join(off) or 'none'} |\n")

    w("\n### SWED: WCS (C1), mean over personas [95% CI], and the majority-vote view\n\n"
      "| community | paper WCS (ft) | paper Q5-Q9 | ours ft WCS | ours ft majority WCS, Q5-Q9 | ours untuned WCS | "
      "ours in-context WCS |\n| --- | --- | --- | --- | --- | --- | --- |\n")
    for c, (name, _, _, p_wcs) in PAPER.items():
        corp = surveys[c]["corpora"]
        ft = corp["finetuned"]
        letters = "".join(ft["items"][q]["majority"] or "?" for q in ("Q5", "Q6", "Q7", "Q8", "Q9"))
        w(f"| {name} | {p_wcs} | {TABLE9[c]} | {interval(ft['criteria']['C1']['mean'], 1)} | "
          f"{fmt(ft['criteria']['C1']['majority'], 1)}, {letters} | "
          f"{interval(corp['untuned']['criteria']['C1']['mean'], 1)} | "
          f"{interval(corp['in_context']['criteria']['C1']['mean'], 1)} |\n")

    from scipy.stats import spearmanr

    paper = [PAPER[c][3] for c in PAPER]
    rho = {k: spearmanr(paper, [surveys[c]["corpora"][k]["criteria"]["C1"]["mean"]["value"] for c in PAPER])[0]
           for k in CORPORA}
    w("\nSpearman rank correlation with the paper's WCS over the six communities: "
      + ", ".join(f"{k} {v:+.2f}" for k, v in rho.items()) + "\n")

    w("\n### SWED: C2-C4 rates over personas (finetuned), majority-vote verdict in brackets\n\n"
      "| community | C2 | C3 | C4 |\n| --- | --- | --- | --- |\n")
    for c, (name, *_rest) in PAPER.items():
        crit = surveys[c]["corpora"]["finetuned"]["criteria"]
        w(f"| {name} | " + " | ".join(
            f"{fmt(crit[k]['rate']['value'])} ({'T' if crit[k]['majority'] else 'F'})" for k in ("C2", "C3", "C4"))
          + " |\n")

    w("\n### WCS contrasts between communities (difference [95% CI], permutation p)\n\n"
      "| pair | finetuned | untuned | in-context |\n| --- | --- | --- | --- |\n")
    contrasts = metrics["survey"]["contrasts"]
    for pair in contrasts["finetuned"]:
        if "pro_ed" not in pair and "anti_ed" not in pair:
            continue
        w(f"| {pair} | " + " | ".join(
            f"{fmt(contrasts[k][pair]['difference'], 1)} [{fmt(contrasts[k][pair]['low'], 1)}, "
            f"{fmt(contrasts[k][pair]['high'], 1)}], p {pvalue(contrasts[k][pair]['p_value'])}" for k in CORPORA) + " |\n")
    separated = {k: sum(v["p_value"] is not None and v["p_value"] < 0.05 for v in contrasts[k].values())
                 for k in CORPORA}
    w("\nPairs (of " + str(len(contrasts["finetuned"])) + ") with p < 0.05: "
      + ", ".join(f"{k} {v}" for k, v in separated.items()) + "\n")


if __name__ == "__main__":
    main()
