"""Content-Security-Policy (issue 13): every page carries it, it allows no inline code, and
no template or server-drawn chart needs any. tests/browser/test_csp.py shows a browser
reporting no violation on every main page."""

from __future__ import annotations

import re
from pathlib import Path

from django.urls import reverse

from tenants.charts import Marker, Series, time_chart

ROOT = Path(__file__).resolve().parents[1]
NONCE = 'nonce="{{ request.csp_nonce }}"'

# What a policy without 'unsafe-inline' (and without 'unsafe-eval') blocks in markup.
_SCRIPT = re.compile(r"<script\b[^>]*>", re.I)
_STYLE_ELEMENT = re.compile(r"<style\b[^>]*>", re.I)
_STYLE_ATTRIBUTE = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I)
_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)
_HX_ON = re.compile(r"\shx-on[:-]", re.I)
_JS_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", re.I)


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {
        part.split()[0]: part.split()[1:] for part in (p.strip() for p in header.split(";")) if part
    }


def test_every_page_carries_a_policy_without_inline_code(client_for, admin_user):
    for page in (reverse("login"), reverse("tenants:list"), reverse("audit")):
        policy = _policy(client_for(admin_user).get(page))
        assert policy["default-src"] == ["'self'"], page
        for directive in ("script-src", "style-src"):
            assert "'self'" in policy[directive]
            assert "'unsafe-inline'" not in policy[directive]
            assert "'unsafe-eval'" not in policy[directive]
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]


def test_the_login_page_carries_it_too(client, db):
    assert "script-src 'self'" in client.get(reverse("login"))["Content-Security-Policy"]


def _offences(text: str) -> list[str]:
    found = []
    for tag in _SCRIPT.findall(text):
        if "src=" not in tag and NONCE not in tag:
            found.append(tag)
    found += [tag for tag in _STYLE_ELEMENT.findall(text) if NONCE not in tag]
    for pattern in (_STYLE_ATTRIBUTE, _HANDLER, _HX_ON, _JS_URL):
        found += [m.group(0)[-60:] for m in pattern.finditer(text)]
    return found


def test_no_template_has_inline_code_without_a_nonce():
    templates = [p for p in ROOT.glob("**/templates/**/*.html") if ".venv" not in p.parts]
    assert len(templates) > 30
    offences = {
        str(p.relative_to(ROOT)): found for p in templates if (found := _offences(p.read_text()))
    }
    assert offences == {}, (
        "Inline script or style is blocked by the Content-Security-Policy: move it to "
        f"static/ or give the element {NONCE}: {offences}"
    )


def test_the_scan_finds_what_the_policy_blocks():
    blocked = [
        '<div style="width: 3%">',
        "<script>alert(1)</script>",
        "<style>p{}</style>",
        '<button onclick="go()">',
        '<form hx-on::after-request="x()">',
        '<a href="javascript:void(0)">',
    ]
    assert all(_offences(markup) for markup in blocked)
    allowed = [
        '<script src="/static/js/a.js" defer></script>',
        f"<script {NONCE}>start()</script>",
        '<p class="online">Done</p>',
        '<svg><rect width="30" fill="#fff"/></svg>',
    ]
    assert not [m for m in allowed if _offences(m)]


def test_charts_are_drawn_without_style_attributes():
    chart = time_chart(
        title="Requests",
        unit="count",
        series=[Series("2xx", [(0, 1.0), (60, 2.0)]), Series("5xx", [(0, 0.0)], dashed=True)],
        start=0,
        end=120,
        period=60,
        markers=[Marker(at=60, label="v7")],
    )
    assert "<svg" in chart and "swatch" in chart
    assert _offences(str(chart)) == []
