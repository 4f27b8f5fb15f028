"""The README's CI step and add-customer script (docs/ci/*.sh), run with bash, curl and
jq against a live console: what a user copies must work."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from deployments.models import Release, Rollout, RolloutStatus
from opsconsole.api.tokens import api_token_create
from opsconsole.jobs.models import Job, JobStatus
from tenants.models import Tenant, TenantStatus

SCRIPTS = Path(__file__).resolve().parents[2] / "docs" / "ci"

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq")), reason="the scripts need curl and jq"
)


def script(name: str, *args: str, url: str, token: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OPSCONSOLE_URL": url,
        "OPSCONSOLE_TOKEN": token,
        "OPSCONSOLE_POLL_S": "0.2",
    }
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def console(live_server, aws, settings, monkeypatch):
    from deployments import rollouts
    from opsconsole.sandbox.seed import sandbox_seed

    # No broker here: a started rollout is recorded; the test plays the workers.
    monkeypatch.setattr(rollouts, "_send_advance", lambda rollout_id: None)
    settings.API_RATE_PER_MINUTE = 10_000
    return live_server.url, sandbox_seed()


def later(seconds: float, action) -> threading.Thread:
    def run():
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_deploy_registers_by_digest_waits_and_fails_with_the_rollout(console, operator_user):
    url, seeded = console
    _, token = api_token_create(user=operator_user, name="ci")
    image = f"{seeded['repository_uri']}@{seeded['image_digest']}"
    Tenant.objects.create(name="A", slug="ci-a", region="us-east-1", status=TenantStatus.ACTIVE)

    halt = later(
        1.5,
        lambda: Rollout.objects.update(
            status=RolloutStatus.HALTED, status_reason="canary ci-a failed"
        ),
    )
    run = script("deploy-release.sh", "2026.12.5", image, url=url, token=token)
    halt.join()
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Registered 2026.12.5" in run.stdout and "halted" in run.stderr
    release = Release.objects.get(version="2026.12.5")
    assert release.image_digest == seeded["image_digest"]

    # Re-run of the same CI step: the release is found, the same rollout followed.
    Rollout.objects.update(status=RolloutStatus.SUCCEEDED)
    again = script("deploy-release.sh", "2026.12.5", image, url=url, token=token)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "registered already" in again.stdout and Rollout.objects.count() == 1


def test_deploy_stops_on_a_refusal_with_the_apis_message(console, operator_user):
    url, _ = console
    _, token = api_token_create(user=operator_user, name="ci")
    run = script("deploy-release.sh", "bad version!", "app:1", url=url, token=token)
    assert run.returncode == 1 and "answered 400" in run.stderr and "(version)" in run.stderr


def test_add_customer_onboards_and_waits(console, admin_user):
    url, _ = console
    _, token = api_token_create(user=admin_user, name="add-customer")

    def worker_done():
        Job.objects.filter(subject_id="ci-acme").update(status=JobStatus.SUCCEEDED)

    done = later(1.5, worker_done)
    run = script(
        "add-customer.sh",
        "ci-acme",
        "Acme Corp",
        '{"tags": {"plan": "gold"}}',
        url=url,
        token=token,
    )
    done.join()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Onboarding ci-acme on 2026.11.0-demo" in run.stdout and "ci-acme is up." in run.stdout
    assert Tenant.objects.get(slug="ci-acme").tags == {"plan": "gold"}
    refused = script("add-customer.sh", "Bad Slug", "X", url=url, token=token)
    assert refused.returncode == 1 and "slug:" in refused.stderr
