"""What a user limited to some tenants sees (issue 13): lists, counts, the fleet page,
rollout pages and the audit log show their tenants only; they cannot start a rollout to
the whole fleet nor steer one that reaches other tenants; an admin sets the scope in the
browser. The matrix of 404s is tests/test_tenant_scope_matrix.py."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deployments import rollout_display, rollouts
from deployments.models import Release, Rollout
from opsconsole.accounts.models import Role, User
from opsconsole.audit.models import AuditEvent
from opsconsole.audit.services import audit_record
from opsconsole.jobs.models import Job, JobStatus
from tenants.models import Tenant, TenantScope, TenantStatus
from tenants.scope import scope_describe

OLD, NEW = "2026.11.0", "2026.12.0"


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)


def _tenant(slug: str, team: str, **extra) -> Tenant:
    fields = {"status": TenantStatus.ACTIVE, "current_release": OLD, **extra}
    return Tenant.objects.create(
        name=slug.title(), slug=slug, region="us-east-1", tags={"team": team}, **fields
    )


def _user(name: str, role: str, *, tenants=(), tags=None) -> User:
    # No password: force_login needs none, and hashing one is slow.
    user = User.objects.create(username=name, role=role)
    if tenants or tags is not None:
        scope = TenantScope.objects.create(user=user, tags=tags or {})
        scope.tenants.set(tenants)
    return user


@pytest.fixture
def fleet(db):
    Release.objects.create(version=OLD, artifact_type="zip")
    release = Release.objects.create(version=NEW, artifact_type="zip")
    alpha = _tenant("alpha", "acme")
    bravo = _tenant("bravo", "globex")
    charlie = _tenant("charlie", "globex", status=TenantStatus.SUSPENDED)
    return {"release": release, "alpha": alpha, "bravo": bravo, "charlie": charlie}


@pytest.fixture
def alpha_operator(fleet) -> User:
    return _user("ao", Role.OPERATOR, tenants=[fleet["alpha"]])


def _start(release, slugs, **kwargs) -> Rollout:
    return rollouts.rollout_start(
        release=release,
        target=rollouts.Target(kind="tenants", values=slugs),
        strategy=rollouts.Strategy(max_parallel=5, bake_s=0),
        **kwargs,
    )


def test_fleet_page_lists_and_counts_the_visible_tenants(client, fleet, aws):
    globex = _user("gv", Role.VIEWER, tags={"team": ["globex"]})
    _start(fleet["release"], ["alpha", "bravo"])
    client.force_login(globex)
    body = client.get("/tenants/").content.decode()
    assert 'href="/tenants/bravo/"' in body and 'href="/tenants/charlie/"' in body
    assert 'href="/tenants/alpha/"' not in body
    # The summary counts what they see: bravo active, charlie suspended.
    assert "<strong>2</strong> tenant(s)" in body
    assert "1 active" in body and "1 suspended" in body
    # The open rollout reaches bravo and alpha: it counts bravo only.
    assert "on 1 tenant(s)" in body
    everyone = _user("ev", Role.VIEWER)
    client.force_login(everyone)
    assert "<strong>3</strong> tenant(s)" in client.get("/tenants/").content.decode()


def test_tenant_list_queries_stay_flat_for_a_scoped_user(client, db, aws):
    user = _user("many", Role.VIEWER, tags={"team": ["acme"]})
    client.force_login(user)

    def queries(n: int) -> int:
        Tenant.objects.all().delete()
        for i in range(n):
            _tenant(f"t-{n}-{i:02d}", "acme")
        client.get("/tenants/")  # warms the metrics cache of the region
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/tenants/").status_code == 200
        return len(ctx.captured_queries)

    assert queries(3) == queries(30)


def test_rollout_pages_show_only_visible_deployments(client, fleet):
    both = _start(fleet["release"], ["alpha", "bravo"])
    bravo_only = _start(Release.objects.get(version=OLD), ["bravo"], confirm_downgrade=True)
    viewer = _user("av", Role.VIEWER, tenants=[fleet["alpha"]])
    client.force_login(viewer)
    listing = client.get("/rollouts/").content.decode()
    assert f'href="/rollouts/{both.pk}/"' in listing
    assert f'href="/rollouts/{bravo_only.pk}/"' not in listing
    page = client.get(f"/rollouts/{both.pk}/").content.decode()
    assert 'data-tenant="alpha"' in page and "bravo" not in page
    assert 'id="rollout-partial"' in page and "1 of your tenants" in page
    assert client.get(f"/rollouts/{bravo_only.pk}/").status_code == 404
    counts = rollout_display.rollout_counts(both, both.deployments.filter(tenant__slug="alpha"))
    # alpha is the canary, bravo the second wave: theirs is the canary alone.
    assert counts["total"] == 1 and [w["size"] for w in counts["waves"]] == [1, 0]


def test_scoped_operator_cannot_start_a_fleet_wide_rollout(fleet, alpha_operator):
    release = fleet["release"]
    for kind, values in (("all", []), ("rings", ["0"]), ("tags", ["team=acme"])):
        with pytest.raises(rollouts.RolloutRefused, match="choose your tenants by name"):
            rollouts.rollout_start(
                release=release,
                target=rollouts.Target(kind=kind, values=values),
                strategy=rollouts.Strategy(),
                created_by=alpha_operator,
            )
    with pytest.raises(rollouts.RolloutRefused, match="Not among the tenants you may see: bravo"):
        _start(release, ["alpha", "bravo"], created_by=alpha_operator)
    with pytest.raises(rollouts.RolloutRefused, match="you may see: nosuch"):
        _start(release, ["nosuch"], created_by=alpha_operator)
    assert not Rollout.objects.exists()
    mine = _start(release, ["alpha"], created_by=alpha_operator)
    assert list(mine.deployments.values_list("tenant__slug", flat=True)) == ["alpha"]


def test_rollout_form_refuses_the_fleet_for_a_scoped_operator(client, fleet, alpha_operator):
    client.force_login(alpha_operator)
    url = f"/releases/{NEW}/deploy/"
    opened = client.get(url).content.decode()
    # The form opens on the tenants they see, named.
    assert 'value="alpha"' in opened
    form = {
        "target": "all",
        "values": "",
        "on_conflict": "wait",
        "max_parallel": 5,
        "canary_max_failures": 0,
        "wave_failure_pct": 10,
        "bake_s": 0,
        "traffic": "all",
        "canary_percent": 10,
        "canary_minutes": 10,
        "action": "start",
    }
    body = client.post(url, form).content.decode()
    assert "choose your tenants by name" in body
    # The preview would name every tenant: it is not shown.
    assert "bravo" not in body
    form.update(target="tenants", values="alpha", action="confirm-start", expected_total="1")
    response = client.post(url, form)
    assert response.status_code == 302
    assert Rollout.objects.get().deployments.get().tenant.slug == "alpha"


def test_scoped_operator_cannot_steer_a_rollout_reaching_others(client, fleet, alpha_operator):
    both = _start(fleet["release"], ["alpha", "bravo"])
    client.force_login(alpha_operator)
    response = client.post(f"/rollouts/{both.pk}/pause/")
    assert response.status_code == 403
    assert b"also deploys to tenants you do not see" in response.content
    mine = _start(fleet["release"], ["alpha"], created_by=alpha_operator)
    assert client.post(f"/rollouts/{mine.pk}/pause/").status_code == 302


def test_audit_and_jobs_of_other_tenants_are_hidden(client, fleet):
    audit_record(request=None, action="tenant.repair", obj=fleet["alpha"])
    audit_record(request=None, action="tenant.suspend", obj=fleet["bravo"])
    audit_record(request=None, action="account.check", object_type="jobs.job", object_id="1")
    fleet_job = Job.objects.create(kind="account_check", status=JobStatus.SUCCEEDED)
    mine = Job.objects.create(
        kind="tenant_reconcile", subject_type="tenant", subject_id="alpha", status="succeeded"
    )
    audit_record(request=None, action="job.retry", obj=mine)
    viewer = _user("av", Role.VIEWER, tenants=[fleet["alpha"]])
    client.force_login(viewer)
    body = client.get("/audit/").content.decode()
    assert "tenant.repair" in body and "job.retry" in body
    assert "tenant.suspend" not in body and "account.check" not in body
    assert client.get(f"/jobs/{fleet_job.pk}/").status_code == 404
    assert client.get(f"/jobs/{mine.pk}/").status_code == 200


def test_schemas_and_fleet_topic_show_only_visible_tenants(client, fleet):
    viewer = _user("av", Role.VIEWER, tenants=[fleet["alpha"]])
    client.force_login(viewer)
    schemas = client.get("/schemas/").content.decode()
    assert "alpha" in schemas and "bravo" not in schemas
    admin = _user("aa", Role.ADMIN, tenants=[fleet["alpha"]])
    client.force_login(admin)
    response = client.post("/tenants/notifications/add/", {"protocol": "email", "endpoint": "x@y"})
    assert response.status_code == 403
    assert client.get("/users/").status_code == 403


def test_admin_sets_a_users_scope_in_the_browser(client, fleet, admin_user):
    person = _user("am", Role.VIEWER)
    client.force_login(admin_user)
    url = f"/users/{person.pk}/"
    page = client.get(url).content.decode()
    assert "Tenants this user may see" in page
    base = {"email": "", "role": "viewer", "is_active": "on"}
    bad = client.post(url, {**base, "scope-sees": "some", "scope-tags": "team"})
    assert bad.status_code == 200 and "is not key=value" in bad.content.decode()
    response = client.post(
        url, {**base, "scope-sees": "some", "scope-tenants": ["alpha"], "scope-tags": "team=globex"}
    )
    assert response.status_code == 302
    scope = TenantScope.objects.get(user=person)
    assert list(scope.tenants.values_list("slug", flat=True)) == ["alpha"]
    assert scope.tags == {"team": ["globex"]}
    event = AuditEvent.objects.get(action="user.scope")
    assert event.details == {"before": "all tenants", "after": "alpha, team=globex"}
    assert "alpha, team=globex" in client.get("/users/").content.decode()
    # The user's own page says so.
    client.force_login(person)
    assert "alpha, team=globex" in client.get("/account/").content.decode()
    client.force_login(admin_user)
    assert client.post(url, {**base, "scope-sees": "all"}).status_code == 302
    assert not TenantScope.objects.filter(user=person).exists()
    assert scope_describe(User.objects.get(pk=person.pk)) == "all tenants"
    # Nobody narrows their own view by mistake (and locks themselves out of the fleet).
    mine = f"/users/{admin_user.pk}/"
    own = {"email": "", "role": "admin", "is_active": "on", "scope-sees": "some"}
    assert b"cannot limit the tenants you see" in client.post(mine, own).content
    assert not TenantScope.objects.filter(user=admin_user).exists()


def test_a_scoped_admin_may_not_onboard_nor_manage_webhooks(client, fleet):
    # Both reach beyond the admin's tenants: a new tenant is outside the scope, and the
    # events of every tenant go to every webhook endpoint.
    client.force_login(_user("sa", Role.ADMIN, tenants=[fleet["alpha"]]))
    assert client.get("/tenants/new/").status_code == 403
    assert client.post("/tenants/new/", {"slug": "new", "name": "New"}).status_code == 403
    assert client.get("/webhooks/").status_code == 403
    assert not Tenant.objects.filter(slug="new").exists()
