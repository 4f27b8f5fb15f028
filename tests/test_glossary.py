"""Words that explain themselves (issue 16): the glossary, the inline "what is this?" on
the pages where the words appear, and a Getting started page whose links all work."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.urls import reverse
from django.utils.html import escape

from deployments import rollouts
from deployments.models import Release
from opsconsole.core.glossary import TERMS
from opsconsole.jobs.models import Job
from tenants.models import TenantStatus
from tests.tenants.conftest import make_tenant

TEMPLATES = Path(__file__).parents[1] / "templates"


@pytest.fixture
def world(db, monkeypatch):
    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)
    tenant = make_tenant("gl-acme", status=TenantStatus.ACTIVE, ring=0)
    release = Release.objects.create(version="2026.12.0-gl", artifact_type="zip")
    rollout = rollouts.rollout_start(
        release=release,
        target=rollouts.Target(kind="tenants", values=[tenant.slug]),
        strategy=rollouts.Strategy(bake_s=300),
    )
    job = Job.objects.create(kind="tenant_reconcile", subject_type="tenant", subject_id=tenant.slug)
    return tenant, release, rollout, job


def _explained(html: str) -> set[str]:
    """The terms a page explains inline (each explanation links its glossary entry)."""
    return set(re.findall(r'<details class="explain">.*?href="/glossary/#([\w-]+)"', html, re.S))


def test_the_tag_names_the_term_for_a_screen_reader_and_links_the_glossary(db):
    html = Template('{% load glossary %}<td>Ring {% explain "ring" %}</td>').render(Context())
    assert '<summary><span aria-hidden="true">?</span>' in html
    assert '<span class="visually-hidden">What is Ring?</span></summary>' in html
    assert escape(TERMS["ring"].text) in html
    assert 'href="/glossary/#ring"' in html


def test_a_misspelt_term_fails_when_the_template_is_compiled():
    with pytest.raises(TemplateSyntaxError, match="No glossary term 'rign'; known: .*ring"):
        Template('{% load glossary %}{% explain "rign" %}')
    with pytest.raises(TemplateSyntaxError, match="quoted term"):
        Template("{% load glossary %}{% explain ring %}")


def test_an_explanation_is_never_put_inside_a_paragraph():
    # <details> is not phrasing content: inside a <p> the browser closes the paragraph
    # before it, and the page's text falls apart.
    wrong = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        for match in re.finditer(r"{% explain ", text):
            before = text[: match.start()]
            opened = max(before.rfind("<p>"), before.rfind("<p "))
            if opened > before.rfind("</p>"):
                wrong.append(f"{path.relative_to(TEMPLATES)}:{before.count(chr(10)) + 1}")
    assert not wrong, f"{{% explain %}} inside a <p>: {wrong}"


def test_the_glossary_lists_every_term_with_an_anchor(client_for, viewer_user):
    page = client_for(viewer_user).get(reverse("glossary")).content.decode()
    for term in TERMS.values():
        assert f'<dt id="{term.slug}">{escape(term.name)}</dt>' in page
    assert f'href="{reverse("getting_started")}"' in page
    # Each sentence is a sentence: a capital first, a full stop last, short enough to read
    # at a glance.
    for term in TERMS.values():
        assert term.text[0].isupper() and term.text.endswith("."), term.slug
        assert len(term.text) <= 320, (term.slug, len(term.text))


@pytest.mark.parametrize(
    ("page", "terms", "who"),
    [
        ("tenants:list", {"ring", "p95", "errors-1h", "health", "isolation"}, "viewer"),
        (
            "tenants:detail",
            {"ring", "isolation", "drift", "repair", "suspend", "offboard"},
            "admin",
        ),
        ("tenants:health", {"health", "alarm"}, "viewer"),
        (
            "deployments:rollout_detail",
            {"wave", "canary", "bake-time", "halt", "rollback"},
            "viewer",
        ),
        ("deployments:rollout_list", {"rollout", "wave", "canary", "halt"}, "viewer"),
        ("deployments:schema_fleet", {"schema"}, "viewer"),
        ("jobs:detail", {"job", "what-it-saw"}, "viewer"),
    ],
)
def test_the_words_of_the_trade_are_explained_where_they_appear(
    request, client_for, aws, world, page, terms, who
):
    tenant, release, rollout, job = world
    args = {
        "tenants:detail": [tenant.slug],
        "tenants:health": [tenant.slug],
        "deployments:rollout_detail": [rollout.pk],
        "jobs:detail": [job.pk],
    }.get(page, [])
    client = client_for(request.getfixturevalue(f"{who}_user"))
    response = client.get(reverse(page, args=args))
    assert response.status_code == 200
    assert terms <= _explained(response.content.decode())


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        href = dict(attrs).get("href")
        if tag == "a" and href and href.startswith("/"):
            self.hrefs.append(href.split("#")[0])


@pytest.mark.parametrize("who", ["viewer", "admin"])
def test_every_link_of_getting_started_works(request, client_for, aws, world, who):
    tenant, release, rollout, _ = world
    client = client_for(request.getfixturevalue(f"{who}_user"))
    page = client.get(reverse("getting_started")).content.decode()
    main = page.split('<main class="page" id="main"', 1)[1].split("</main>", 1)[0]
    parser = _Links()
    parser.feed(main)
    # The walk-through points at what exists: the first tenant, the release new tenants
    # start on, the last rollout.
    for expected in (
        reverse("tenants:detail", args=[tenant.slug]),
        reverse("deployments:release_detail", args=[release.version]),
        reverse("deployments:rollout_detail", args=[rollout.pk]),
        reverse("glossary"),
        reverse("account"),
    ):
        assert expected in parser.hrefs, expected
    assert (reverse("tenants:onboard") in parser.hrefs) == (who == "admin")
    for href in sorted(set(parser.hrefs)):
        assert client.get(href).status_code == 200, href


def test_the_empty_fleet_page_and_every_page_link_getting_started(client_for, viewer_user, aws):
    client = client_for(viewer_user)
    fleet = client.get(reverse("tenants:list")).content.decode()
    assert "No tenants yet" in fleet
    assert f'<a href="{reverse("getting_started")}" id="getting-started-link">' in fleet
    footer = client.get(reverse("deployments:release_list")).content.decode()
    assert f'<footer class="site-foot"><a href="{reverse("getting_started")}">' in footer


def test_the_empty_rollout_list_links_the_releases(client_for, viewer_user):
    page = client_for(viewer_user).get(reverse("deployments:rollout_list")).content.decode()
    assert "No rollouts yet" in page
    assert f'href="{reverse("deployments:release_list")}">releases</a>' in page
