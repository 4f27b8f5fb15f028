"""Small things a newcomer notices (issue 16): the nav and the address agree (Schemas at
/schemas/), a skip link, help text contrast of at least 4.5:1, chart labels of 12 px."""

from __future__ import annotations

import re
from pathlib import Path

CSS = Path(__file__).parents[1] / "static" / "css"


def _luminance(hex_colour: str) -> float:
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    channels = [int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted([_luminance(a), _luminance(b)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _variables() -> dict[str, str]:
    root = (CSS / "console.css").read_text()
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{3,6})", root))


def test_the_nav_and_the_address_both_say_schemas(client_for, viewer_user):
    c = client_for(viewer_user)
    page = c.get("/schemas/")
    assert page.status_code == 200
    assert '<a href="/schemas/" aria-current="page">Schemas</a>' in page.content.decode()
    old = c.get("/migrations/")
    assert old.status_code == 301 and old["Location"] == "/schemas/"
    assert c.get("/migrations/he-x/")["Location"] == "/schemas/he-x/"


def test_a_skip_link_comes_first_and_reaches_the_content(client_for, viewer_user):
    page = client_for(viewer_user).get("/rollouts/").content.decode()
    body = page.split("<body", 1)[1]
    first_link = re.search(r"<a\s[^>]*>", body)[0]
    assert 'class="skip-link" href="#main"' in first_link
    assert '<main class="page" id="main" tabindex="-1">' in page


def test_muted_and_warning_text_reach_4_5_to_1():
    colours = _variables()
    muted, warn = colours["muted"], colours["warn"]
    # Help text and table headings on the page, on cards, on the light pills.
    for background in (colours["bg"], colours["card"], "#eef1f6", "#f0f1f4"):
        assert contrast(muted, background) >= 4.5, (muted, background)
    # The degraded pill and chart notes.
    for background in ("#fff1d6", colours["card"]):
        assert contrast(warn, background) >= 4.5, (warn, background)


def test_chart_labels_are_at_least_12_px():
    health = (CSS / "health.css").read_text()
    assert ".chart svg text { font-size: 12px; }" in health
    # The SVG is 520 units wide: its column must leave it at least 520 px (padding 2 x 10,
    # border 2 x 1) so a unit is not drawn smaller than a pixel.
    column = int(re.search(r"minmax\(min\((\d+)px, 100%\), 1fr\)", health)[1])
    assert column - 2 * 10 - 2 * 1 >= 520
