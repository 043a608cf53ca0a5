"""aekit report: one self-contained HTML page per run, checked in a real browser (headless Chromium)."""

import io
import re

import numpy as np
import pytest
from PIL import Image

import aekit
from browser import open_page
from conftest import RESNET, assert_clean_error, photo_folder, run_cli

RUNS = {  # each type on the digits, and a photo run
    "ae": {"epochs": 3},
    "dae": {"epochs": 3, "backbone": "conv", "hidden": [8, 16]},
    "sae": {"epochs": 3, "sparsity": "topk", "k": 4},
    "vae": {"epochs": 3, "latent_dim": 2},
}


def ink(png: bytes) -> float:
    """The share of a screenshot that is not white."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return float((pixels < 235).mean())


def check_in_browser(page, tmp_path, figures: int) -> None:
    """The page opens in Chromium with no error and no request, every figure decoded and on the screenshot."""
    text = page.read_text()
    seen = open_page(page)
    assert seen.errors == [] and seen.requests == []
    assert seen.images == [True] * figures
    bare = tmp_path / "bare.html"  # the same page without its figures' pixels: the screenshot must show them
    bare.write_text(re.sub(r'<img src="data:image/png;base64,[^"]*"', "<img", text))
    assert ink(seen.screenshot) > 1.5 * ink(open_page(bare).screenshot)


@pytest.mark.parametrize(
    "model", ["ae", *(pytest.param(m, marks=pytest.mark.slow) for m in RUNS if m != "ae")]
)  # fmt: skip
def test_report_of_each_type_opens_in_a_browser_with_every_figure_and_nothing_fetched(tmp_path, model):
    run = aekit.train("digits", model, out=tmp_path / "run", quiet=True, batch_size=64, **RUNS[model])
    report = aekit.report(run, tmp_path / "report.html", figures=tmp_path / "figures")
    own = {"ae": [], "dae": ["denoising"], "sae": ["sparse-code-histogram"], "vae": ["samples", "manifold"]}[model]
    names = ["loss-curves", "reconstructions", *own, "anomaly-scores"]
    assert report["figure_files"] == [str(tmp_path / "figures" / f"{name}.png") for name in names]
    assert report["figures"] == len(names)
    assert report["bytes"] < 5_000_000
    text = (tmp_path / "report.html").read_text()
    for heading in ("Metrics beside the baselines", "Reconstructions", "Anomaly scores", "Environment"):
        assert f"<h2>{heading}</h2>" in text
    assert "pca_" in text and '"latent_dim"' in text  # the baselines, and the config
    check_in_browser(tmp_path / "report.html", tmp_path, report["figures"])


@pytest.mark.slow
def test_report_of_a_photo_run_shows_its_anomaly_maps_in_a_browser(tmp_path):
    photo_folder(tmp_path / "photos")
    run = aekit.train(tmp_path / "photos", "ae", out=tmp_path / "run", epochs=2, crop=(16, 16), **RESNET)
    report = aekit.report(run, tmp_path / "report.html")
    assert "maximum of its anomaly map" in (tmp_path / "report.html").read_text()
    check_in_browser(tmp_path / "report.html", tmp_path, report["figures"])


def test_the_browser_check_sees_a_request_a_script_error_and_a_missing_image(tmp_path):
    """The checks above can fail: a page that fetches an image, one with a script error, one with a broken
    image."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<html><body><script>console.error("x"); undefined_function()</script><img src="http://example.com/x.png">'
        '<img src="data:image/png;base64,AAAA"></body></html>'
    )
    seen = open_page(page)
    assert seen.requests == ["http://example.com/x.png"]
    assert len(seen.errors) >= 2  # the console.error call and the exception (and the failed load)
    assert seen.images == [False, False]


def test_report_refuses_an_existing_file_and_a_wrong_suffix(tmp_path, digits_run_dir):
    out = tmp_path / "r.html"
    out.write_text("<html>mine</html>")
    assert_clean_error(run_cli("report", digits_run_dir, "-o", out), "exists; pass --force")
    assert_clean_error(run_cli("report", digits_run_dir, "-o", tmp_path / "r.pdf"), "name this output .html")
    assert_clean_error(run_cli("report", tmp_path / "nowhere", "-o", tmp_path / "x.html"), "nowhere")
    assert out.read_text() == "<html>mine</html>"
