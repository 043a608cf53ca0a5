"""The guide (docs/guide.md) and its Korean translation (docs/guide.ko.md): every figure that `make figures`
makes (docs/figures.py) is checked in, shown in both, beside the commands that make it."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDES = [ROOT / "docs" / "guide.md", ROOT / "docs" / "guide.ko.md"]


def figures_script():
    spec = importlib.util.spec_from_file_location("guide_figures", ROOT / "docs" / "figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_figure_is_checked_in_and_shown_beside_its_commands(guide):
    script = figures_script()
    text = guide.read_text()
    shown = re.findall(r"!\[[^\]]*\]\((figures/guide/[^)]+\.png)\)", text)
    assert sorted(shown) == sorted(f"figures/guide/{name}.png" for name in script.FIGURES), "each figure once"
    for name, commands in script.FIGURES.items():
        assert (ROOT / script.OUT / f"{name}.png").stat().st_size > 1000, f"{name}.png is not checked in"
        for command in commands:
            if command.startswith(("aekit", "python")):
                assert command in text, f"{guide.name} does not show: {command}"


def test_both_guides_cover_the_four_types_the_four_uses_and_anomaly_detection():
    english, korean = (guide.read_text() for guide in GUIDES)
    types = ("`ae`", "`dae`", "`sae`", "`vae`")
    uses = ("aekit compress", "aekit denoise", "aekit latent", "aekit generate", "aekit anomaly")
    for word in types + uses:
        assert word in english and word in korean, word
    assert len(re.findall(r"^#+ ", korean, flags=re.M)) == len(re.findall(r"^#+ ", english, flags=re.M))
    assert re.search(r"[\uac00-\ud7a3]{200}", re.sub(r"[^\uac00-\ud7a3]", "", korean))  # written in Hangul
