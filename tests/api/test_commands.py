"""The commands for scripts, over the same services as the pages and the API."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from deployments.models import Release, Rollout, RolloutStatus
from opsconsole.audit.models import AuditEvent
from opsconsole.jobs.models import Job, JobStatus
from opsconsole.sandbox.demo_release import app_files, build_zip
from tenants.models import Tenant, TenantStatus


def run(*args) -> tuple[str, int]:
    out = io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=out)
    except SystemExit as exc:
        return out.getvalue(), int(exc.code)
    return out.getvalue(), 0


def test_release_register_from_a_zip_and_refusals(seeded, operator_user, tmp_path):
    app = tmp_path / "app.zip"
    app.write_bytes(build_zip(app_files("2026.12.1")))
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "0001_init.sql").write_text("CREATE TABLE t (id int);\n")
    out, _ = run(
        "release_register",
        "2026.12.1",
        "--zip",
        str(app),
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
        "--migrations",
        str(tmp_path / "sql"),
        "--user",
        "otto",
    )
    release = Release.objects.get(version="2026.12.1")
    assert "Registered 2026.12.1" in out and [m.name for m in release.migrations.all()] == [
        "0001_init.sql"
    ]
    assert AuditEvent.objects.filter(action="release.register", actor=operator_user).exists()
    with pytest.raises(CommandError, match="already registered"):
        run("release_register", "2026.12.1", "--zip", str(app), "--user", "otto")


def test_release_register_needs_an_operator(seeded, viewer_user, tmp_path):
    with pytest.raises(CommandError, match="not operator"):
        run("release_register", "x1", "--image", "app:1", "--user", "vera")


@pytest.mark.parametrize(("end", "code"), [(RolloutStatus.SUCCEEDED, 0), (RolloutStatus.HALTED, 1)])
def test_rollout_start_wait_exits_with_the_outcome(seeded, operator_user, monkeypatch, end, code):
    from deployments import rollouts
    from deployments.management.commands import rollout_start

    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)
    Tenant.objects.create(name="A", slug="cm-a", region="us-east-1", status=TenantStatus.ACTIVE)

    def worker_finishes(_seconds):
        Rollout.objects.update(status=end, status_reason="canary failed" if code else "")

    monkeypatch.setattr(rollout_start.time, "sleep", worker_finishes)
    out, exit_code = run("rollout_start", "2026.11.0-demo", "--user", "otto", "--wait")
    assert exit_code == code, out
    assert "Rollout #" in out and ("canary failed" in out) == bool(code)


def test_rollout_start_refusal_is_an_error(seeded, operator_user):
    with pytest.raises(CommandError, match="No tenant to deploy to"):
        run("rollout_start", "2026.11.0-demo", "--user", "otto")


def test_tenant_onboard_plan_then_onboard(seeded, admin_user, monkeypatch):
    out, _ = run("tenant_onboard", "cm-acme", "Acme", "--user", "ada", "--plan")
    assert "Release: 2026.11.0-demo" in out and "/month" in out
    assert not Tenant.objects.filter(slug="cm-acme").exists()
    with pytest.raises(CommandError, match="slug"):
        run("tenant_onboard", "Bad Slug", "Acme", "--user", "ada")
    with pytest.raises(CommandError, match="env"):
        run("tenant_onboard", "cm-b", "B", "--user", "ada", "--env", "NOEQUALS")

    from tenants.management.commands import tenant_onboard

    def worker_fails(_seconds):
        Job.objects.filter(subject_id="cm-acme").update(status=JobStatus.FAILED, error="boom")

    monkeypatch.setattr(tenant_onboard.time, "sleep", worker_fails)
    out, code = run(
        "tenant_onboard", "cm-acme", "Acme", "--user", "ada", "--tag", "team=a", "--wait"
    )
    tenant = Tenant.objects.get(slug="cm-acme")
    assert tenant.tags == {"team": "a"} and code == 1 and "boom" in out
    event = AuditEvent.objects.get(action="tenant.onboard", object_id=str(tenant.pk))
    assert event.actor == admin_user and event.details["via"] == "command"
