"""The audit log for people: objects as links to their pages, details as key: value.

An event stores what ``audit_record`` was given (a model's label and pk, any JSON of
details); this turns that into what a reader follows: "tenant acme" linking the tenant,
"role: viewer → operator" instead of two Python dicts. Nothing is queried per event: the
links come from what the event stored (a tenant's slug and a release's version are their
``str``), and release names in details are checked against the releases in one query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.urls import NoReverseMatch, reverse

from opsconsole.audit.models import AuditEvent

# object_type -> (what a person calls it, the URL name, which stored field the URL takes).
_PAGES: dict[str, tuple[str, str, str]] = {
    "tenants.tenant": ("Tenant", "tenants:detail", "repr"),
    "deployments.release": ("Release", "deployments:release_detail", "repr"),
    "deployments.rollout": ("Rollout", "deployments:rollout_detail", "id"),
    "jobs.job": ("Job", "jobs:detail", "id"),
    "accounts.user": ("User", "users:edit", "id"),
    "tenants.attachment": ("Attachment", "tenants:attachments", ""),
    "fleet": ("Fleet", "tenants:fleet_notifications", ""),
}
# Detail keys that name another object: how to link each value.
_DETAIL_LINKS = {
    "rollbacks": ("deployments:rollout_detail", "Rollout #{}"),
    "rollout_id": ("deployments:rollout_detail", "Rollout #{}"),
    "job_id": ("jobs:detail", "Job #{}"),
}


def type_label(object_type: str) -> str:
    """'Tenant' for 'tenants.tenant': the filter's option text."""
    page = _PAGES.get(object_type)
    return page[0] if page else object_type


@dataclass
class Part:
    text: str
    url: str = ""


@dataclass
class Detail:
    key: str
    parts: list[Part] = field(default_factory=list)


def _url(name: str, *args: Any) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def _text(value: Any) -> str:
    """A value as a person reads it: lists joined, mappings as key: value, no Python."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | set):
        return ", ".join(_text(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{_key(k)}: {_text(v)}" for k, v in value.items()) if value else "none"
    return str(value)


def _key(key: str) -> str:
    return str(key).replace("_", " ")


def object_link(event: AuditEvent, *, can_admin: bool) -> Part:
    """'Tenant acme' with the tenant's page, 'Rollout #5 of 2026.12.0' with the rollout's."""
    page = _PAGES.get(event.object_type)
    if page is None:
        return Part(f"{event.object_type} {event.object_repr}".strip())
    label, url_name, arg = page
    text = event.object_repr or f"#{event.object_id}"
    if not text.lower().startswith(label.lower()):
        text = f"{label} {text}"
    else:
        text = text[0].upper() + text[1:]
    if event.object_type == "accounts.user" and not can_admin:
        return Part(text)  # the user pages are the admins'
    value = {"repr": event.object_repr, "id": event.object_id}.get(arg)
    if arg and not value:
        return Part(text)
    return Part(text, _url(url_name, value) if arg else _url(url_name))


def detail_items(details: dict[str, Any], *, releases: set[str]) -> list[Detail]:
    """Each detail as key: value; ``before`` and ``after`` as one 'key: old → new' each."""
    if not isinstance(details, dict):
        return [Detail("details", [Part(_text(details))])]
    items: list[Detail] = []
    before, after = details.get("before"), details.get("after")
    paired = isinstance(before, dict) and isinstance(after, dict)
    if paired:
        for key in dict.fromkeys([*before, *after]):
            old, new = before.get(key), after.get(key)
            change = _text(new) if old == new else f"{_text(old)} → {_text(new)}"
            items.append(Detail(_key(key), [Part(change)]))
    for key, value in details.items():
        if paired and key in ("before", "after"):
            continue
        if key in _DETAIL_LINKS:
            url_name, label = _DETAIL_LINKS[key]
            values = value if isinstance(value, list) else [value]
            items.append(
                Detail(_key(key), [Part(label.format(v), _url(url_name, v)) for v in values])
            )
        elif key == "release" and isinstance(value, str) and value in releases:
            items.append(
                Detail("release", [Part(value, _url("deployments:release_detail", value))])
            )
        else:
            items.append(Detail(_key(key), [Part(_text(value))]))
    return items


def annotate(events: list[AuditEvent], *, can_admin: bool) -> None:
    """Give each event ``link`` (a Part) and ``items`` (its details): one query in all."""
    from deployments.models import Release

    named = {
        e.details.get("release")
        for e in events
        if isinstance(e.details, dict) and isinstance(e.details.get("release"), str)
    }
    releases = set(Release.objects.filter(version__in=named).values_list("version", flat=True))
    for event in events:
        event.link = object_link(event, can_admin=can_admin)
        event.items = detail_items(event.details or {}, releases=releases)
