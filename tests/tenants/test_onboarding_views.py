"""The onboarding form: plan first, validation before AWS, one tenant per form, roles."""

import re

import pytest
from django.urls import reverse

from opsconsole.audit.models import AuditEvent
from opsconsole.jobs.models import Job
from tenants.models import Tenant

VALID = {
    "name": "Acme Corp",
    "slug": "acme",
    "contact_email": "ops@acme.example",
    "region": "us-east-1",
    "ring": "1",
    "isolation": "shared",
    "db_instance_class": "db.t4g.micro",
    "db_allocated_storage_gb": "20",
    "db_backup_retention_days": "7",
    "serverless_min_acu": "0.5",
    "serverless_max_acu": "4",
    "lambda_memory_mb": "256",
    "lambda_timeout_s": "30",
    "env_vars_text": "LOG_LEVEL=info",
    "tags_text": "plan=enterprise",
    "form_token": "token-1",
}


@pytest.fixture
def admin(client_for, admin_user):
    return client_for(admin_user)


def _post(client, **changes):
    data = {**VALID, **changes}
    return client.post(reverse("tenants:onboard"), data)


def test_plan_lists_every_resource_by_name_and_a_cost(admin):
    page = _post(admin, action="plan").content.decode()
    for name in (
        "opsconsole-acme",
        "tenant_acme",
        "opsconsole/tenants/acme/db",
        "/aws/lambda/opsconsole-acme",
        "opsconsole-acme-errors",
        "opsconsole-shared-pg",
    ):
        assert name in page, name
    assert "Estimated monthly cost" in page and "$" in page
    assert Tenant.objects.count() == 0  # a plan creates nothing


def test_dedicated_plan_costs_the_instance_class(admin):
    page = _post(
        admin,
        action="plan",
        isolation="dedicated",
        db_instance_class="db.t4g.medium",
        db_allocated_storage_gb="100",
    ).content
    assert b"RDS db.t4g.medium" in page and b"$47.45" in page  # 0.065 x 730
    assert b"RDS storage 100 GB" in page and b"$11.50" in page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"slug": "Acme"}, "lowercase letters"),
        ({"slug": "a--b"}, "single hyphens"),
        ({"slug": "9lives"}, "start with a letter"),
        ({"slug": "a" * 41}, "40"),
        ({"slug": "admin"}, "reserved"),
        ({"region": "ap-south-9"}, "not one of the available choices"),
        ({"lambda_memory_mb": "64"}, "128 to 10,240 MB"),
        ({"lambda_timeout_s": "901"}, "1 to 900 seconds"),
        ({"env_vars_text": "AWS_REGION=x"}, "reserved"),
        ({"env_vars_text": "bad name=1"}, "not a valid name"),
        (
            {"isolation": "serverless", "serverless_min_acu": "8", "serverless_max_acu": "4"},
            "Capacity",
        ),
        ({"custom_domain": "api.acme.example"}, "needs its ACM certificate ARN"),
        ({"isolation": "shared", "use_rds_proxy": "on"}, "shared endpoint"),
    ],
)
def test_bad_input_is_a_form_error_and_creates_nothing(admin, changes, message):
    response = _post(admin, action="create", **changes)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Tenant.objects.count() == 0 and Job.objects.count() == 0


def test_duplicate_slug_is_refused(admin):
    Tenant.objects.create(name="Other", slug="acme", region="us-east-1")
    response = _post(admin, action="create", form_token="another")
    assert b"Tenant with this Slug already exists" in response.content
    assert Tenant.objects.count() == 1


def test_onboard_creates_the_tenant_and_its_job_once(
    admin, django_capture_on_commit_callbacks, monkeypatch
):
    from opsconsole.jobs import tasks

    sent = []
    monkeypatch.setattr(
        tasks.job_run, "apply_async", lambda args, countdown=None: sent.append(args)
    )
    with django_capture_on_commit_callbacks(execute=True):
        first = _post(admin, action="create")
    second = _post(admin, action="create")  # the same form submitted again
    assert first.status_code == 302 and second.status_code == 302
    assert first["Location"] == second["Location"] == reverse("tenants:detail", args=["acme"])
    tenant = Tenant.objects.get()
    assert tenant.status == "provisioning" and tenant.env_vars == {"LOG_LEVEL": "info"}
    assert tenant.tags == {"plan": "enterprise"}
    job = Job.objects.get()
    assert (job.kind, job.subject_id) == ("tenant_provision", "acme")
    assert [s.name for s in job.steps.all()][:4] == [
        "network",
        "attachments",
        "database",
        "secret",
    ]
    assert sent == [[job.pk]]
    assert AuditEvent.objects.filter(action="tenant.onboard", object_repr="acme").count() == 1


def test_secret_values_go_to_secrets_manager_never_to_the_database(admin, aws):
    from opsconsole.aws import secrets

    _post(admin, action="create", secret_env_text="STRIPE_KEY=sk_live_abc123")
    tenant = Tenant.objects.get()
    assert tenant.secret_env_names == ["STRIPE_KEY"]
    assert secrets.get_secret_json(secret_id="opsconsole/tenants/acme/env") == {
        "STRIPE_KEY": "sk_live_abc123"
    }
    from django.db import connection

    with connection.cursor() as cur:
        for table in (
            "tenants_tenant",
            "tenants_tenantresource",
            "jobs_job",
            "jobs_jobstep",
            "audit_auditevent",
        ):
            cur.execute(
                f"SELECT count(*) FROM {table} WHERE CAST({table}.* AS text) LIKE %s",
                ["%sk_live_abc123%"],
            )
            assert cur.fetchone()[0] == 0, table


@pytest.mark.parametrize("url_name", ["tenants:onboard", "tenants:offboard", "tenants:edit"])
def test_viewer_and_operator_get_403_on_admin_pages(
    client_for, viewer_user, operator_user, url_name
):
    Tenant.objects.create(name="Acme", slug="acme", region="us-east-1", status="active")
    args = [] if url_name == "tenants:onboard" else ["acme"]
    for user in (viewer_user, operator_user):
        client = client_for(user)
        assert client.get(reverse(url_name, args=args)).status_code == 403
        assert client.post(reverse(url_name, args=args), {}).status_code == 403


def test_outsider_gets_404_on_tenant_pages(client_for, outsider_user):
    Tenant.objects.create(name="Acme", slug="acme", region="us-east-1", status="active")
    client = client_for(outsider_user)
    for name in ("detail", "edit", "offboard"):
        assert client.get(reverse(f"tenants:{name}", args=["acme"])).status_code == 404
    for name in ("drift", "repair", "suspend", "resume"):
        assert client.post(reverse(f"tenants:{name}", args=["acme"])).status_code == 404


def test_offboard_needs_the_slug_typed(admin):
    tenant = Tenant.objects.create(name="Acme", slug="acme", region="us-east-1", status="active")
    response = admin.post(reverse("tenants:offboard", args=["acme"]), {"confirm": "acm"})
    assert response.status_code == 400 and b"Type the slug acme" in response.content
    tenant.refresh_from_db()
    assert tenant.status == "active" and not Job.objects.exists()


@pytest.mark.parametrize("action", ["suspend", "repair"])
def test_suspend_and_repair_ask_first_and_cancelling_changes_nothing(admin, action):
    tenant = Tenant.objects.create(name="Acme", slug="acme", region="us-east-1", status="active")
    url = reverse(f"tenants:{action}", args=["acme"])
    # Posted without the dialog's confirmation: a page that asks, naming the tenant.
    asked = admin.post(url)
    assert asked.status_code == 200
    page = asked.content.decode()
    assert f"{action.title()} acme?" in page and 'name="confirmed" value="yes"' in page
    # Its way back is a link to the tenant page: following it changes nothing.
    assert f'href="{reverse("tenants:detail", args=["acme"])}"' in page
    tenant.refresh_from_db()
    assert tenant.status == "active" and not Job.objects.exists()
    assert not AuditEvent.objects.filter(action=f"tenant.{action}").exists()
    # The tenant page's own button opens the dialog (confirm.js), no inline script.
    detail = admin.get(reverse("tenants:detail", args=["acme"])).content.decode()
    assert f'data-confirm="confirm-{action}"' in detail and f'id="confirm-{action}"' in detail
    assert "onclick=" not in detail and "onsubmit=" not in detail

    done = admin.post(url, {"confirmed": "yes"}, follow=True)
    job = Job.objects.get()
    assert f'href="{reverse("jobs:detail", args=[job.pk])}"' in done.content.decode()
    tenant.refresh_from_db()
    assert tenant.status == ("suspended" if action == "suspend" else "active")


# --- the form written for people (issue 16) --------------------------------------------


def _described_ids_exist(page: str) -> None:
    ids = set(re.findall(r'\sid="([^"]+)"', page))
    for names in re.findall(r'aria-describedby="([^"]*)"', page):
        for name in names.split():
            assert name in ids, f"aria-describedby names {name}, which is not on the page"


def test_a_long_slug_is_refused_beside_it_never_cut_short(admin):
    slug = "globex-corporation-europe-west-production1"  # 42 characters, pasted
    page = admin.get(reverse("tenants:onboard")).content.decode()
    # No maxlength (a browser truncates a paste to it silently); the script counts instead.
    tag = re.search(r'<input type="text" name="slug"[^>]*>', page)[0]
    assert "maxlength" not in tag and 'data-max-length="40"' in tag
    response = _post(admin, action="plan", slug=slug)
    page = response.content.decode()
    error = re.search(r'<div class="error field-errors" id="id_slug_error">(.*?)</div>', page, re.S)
    assert error and "At most 40 characters, and this one has 42." in error[1]
    assert "Nothing was cut off" in error[1]
    # What was typed comes back whole, for the person to shorten.
    assert f'value="{slug}"' in page and 'id="plan"' in page and "onboard-create" not in page
    assert Tenant.objects.count() == 0


def test_required_fields_are_marked_and_every_description_exists(admin):
    for response in (
        admin.get(reverse("tenants:onboard")),
        _post(admin, slug="Bad", action="plan"),
    ):
        page = response.content.decode()
        for name in ("name", "slug", "region"):
            assert re.search(
                rf'<label for="id_{name}">[^<]*<span class="required">required</span>', page
            ), name
        assert not re.search(r'<label for="id_contact_email">[^<]*<span class="required"', page)
        # The isolation radios: a legend, no label tied to no input.
        assert re.search(r'<legend>Isolation <span class="required">required', page)
        assert '<label for="">' not in page
        _described_ids_exist(page)


def test_the_plan_holds_the_onboard_button_and_speaks_plainly(admin, monkeypatch):
    from tenants import release_source

    source = release_source.get()
    monkeypatch.setattr(source, "versions", lambda: ["2026.12.0", "2026.11.0"])
    monkeypatch.setattr(source, "newest_version", lambda: "2026.12.0")
    page = _post(admin, action="plan").content.decode()
    plan = page.split('<aside class="card plan" id="plan">', 1)[1].split("</aside>")[0]
    # The primary action sits in the plan it acts on and submits the form beside it.
    assert re.search(
        r'<button form="onboard-form" name="action" value="create" class="primary" '
        r'id="onboard-create">Onboard acme</button>',
        plan,
    )
    form = page.split('id="onboard-form"', 1)[1].split("</form>")[0]
    assert "onboard-create" not in form and "Show the plan again" in form
    # No settings the person cannot open; the release by its version.
    assert "settings</th>" not in plan and "before discounts and free tier" in plan
    assert '<option value="" selected>2026.12.0, the one new tenants start on</option>' in page
    assert "Newest release" not in page
