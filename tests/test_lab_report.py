"""report.html opens in a real headless browser (Debian's Chromium) and shows every plot and the table."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from adamkit.lab.race import RaceSettings, race
from adamkit.lab.report import write_all


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("no Chromium: install Debian's package (apt-get install -y chromium); .ci/run does")


def browse(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium with a private profile; its stdout."""
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("race")
    data = race(RaceSettings(problems=["quadratic", "elongated"], steps=30))
    paths = write_all(data, out)
    return data, paths


def test_report_is_self_contained(report):
    data, paths = report
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == 3
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)  # nothing fetched from files or servers


def test_browser_shows_every_plot_and_the_table(report, tmp_path):
    data, paths = report
    dom = browse(tmp_path, "--dump-dom", paths["html"].resolve().as_uri())
    # the page's own script counts images the browser decoded (complete, naturalWidth > 0) after load
    assert "3 of 3 plots rendered" in dom
    for caption in ("Loss curves: quadratic", "Loss curves: elongated",
                    "Optimizer paths over the loss contours: elongated"):  # fmt: skip
        assert f"<figcaption>{caption}</figcaption>" in dom
    for problem in data["problems"]:
        table = re.search(rf"<table class=\"results\" data-problem=\"{problem['name']}\">(.*?)</table>", dom, re.S)
        assert table, problem["name"]
        cells = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", table.group(1))
        assert [c[0] for c in cells] == [r["optimizer"] for r in problem["results"]]
        for (_, lr, final), r in zip(cells, problem["results"]):
            assert float(final) == pytest.approx(r["final_loss"], rel=1e-3) and float(lr) == pytest.approx(r["lr"])


def test_screenshot_is_not_blank(report, tmp_path):
    import matplotlib.image

    _, paths = report
    shot = tmp_path / "shot.png"
    browse(tmp_path, f"--screenshot={shot}", "--window-size=1200,2400", paths["html"].resolve().as_uri())
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1200)
    ink = (pixels < 0.9).any(axis=-1).mean()
    colored = (pixels.max(axis=-1) - pixels.min(axis=-1) > 0.3).mean()  # plot lines are colored, text is not
    assert ink > 0.02, f"only {ink:.1%} of the screenshot is not white"
    assert colored > 0.002, f"only {colored:.2%} colored pixels: the plots did not render"
    assert np.std(pixels) > 0.05
