"""`dvc plots show` on the committed demo reports renders offline (issue 23, point 6): the page loads vega from
configs/dvc-plots (plots.html_template in .dvc/config), not from DVC's default CDN links."""

import html
import json
import re
import shutil
import subprocess

import pytest

from conftest import BIN, REPO, chromium_flags, run

pytestmark = pytest.mark.heavy  # runs DVC

# After the page's scripts ran (vega-embed renders asynchronously; --virtual-time-budget runs the timer), the
# size of each plot's drawing (vega's svg or canvas, class marks), as an attribute --dump-dom shows.
MEASURE_PLOTS = """<script>
window.addEventListener('load', () => setTimeout(() => {
  const sizes = [...document.querySelectorAll('body > div[id]')].map(plot => {
    const drawing = plot.querySelector('svg.marks, canvas.marks');
    const box = drawing ? drawing.getBoundingClientRect() : {width: 0, height: 0};
    return [Math.round(box.width), Math.round(box.height)];
  });
  document.body.setAttribute('data-plots', JSON.stringify(sizes));
}, 3000));
</script>"""


def test_dvc_plots_show_renders_the_demo_plots_with_the_network_blocked(tmp_path):
    project = tmp_path / "project"
    for name in ("dvc.yaml", "params.yaml", ".dvc/config", "configs/dvc-plots", "reports"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        copy(REPO / name, project / name)
    run(["git", "init", "-q"], project)
    run([str(BIN / "dvc"), "plots", "show"], project)  # a plain `dvc plots show`: the config picks the template
    page = project / "dvc_plots/index.html"
    text = page.read_text(encoding="utf-8")
    assert "cdn.jsdelivr.net" not in text and "../configs/dvc-plots/vega.min.js" in text
    plots = text.count("vegaEmbed(")
    assert plots >= 5  # the per-community fidelity bars, cross-community FID, survey, confusion matrices

    measured = page.with_name("measured.html")  # beside the page: the same relative script paths
    measured.write_text(text.replace("</body>", MEASURE_PLOTS + "</body>"), encoding="utf-8")
    offline = "--host-resolver-rules=MAP * ~NOTFOUND"  # no host name resolves: a CDN link would fail
    dom = subprocess.run([*chromium_flags(tmp_path / "chrome"), offline, "--dump-dom", measured.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-plots="([^"]*)"', dom)
    assert found, "the measuring script did not run"
    sizes = json.loads(html.unescape(found.group(1)))
    assert len(sizes) == plots and all(w > 50 and h > 50 for w, h in sizes), sizes
