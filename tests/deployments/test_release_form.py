"""The release form written for people (issue 16): the console's words, required fields
marked, each error beside its field (the service's too), the inputs of other artifact
types ignored, the runtime checked against the zip, a chosen file asked for again."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from deployments.forms import ReleaseForm
from deployments.models import Release
from opsconsole.sandbox.demo_release import DEMO_VERSION, app_files, build_zip

FORM = {
    "version": "2026.12.9",
    "artifact": "zip",
    "runtime": "python3.12",
    "handler": "app.handler",
    "architecture": "x86_64",
    "memory_mb": 256,
    "timeout_s": 30,
}
GO_ZIP = build_zip({"bootstrap": b"\x7fELF not really"}, modes={"bootstrap": 0o755})


@pytest.fixture
def artifact_bucket(aws, db):
    """All a zip release needs of AWS: the bucket it is kept in (in-process moto)."""
    from django.conf import settings

    from opsconsole.aws.clients import client

    client("s3").create_bucket(Bucket=settings.BASELINE["artifact_bucket"])


def python_zip(version: str = "2026.12.9") -> SimpleUploadedFile:
    return SimpleUploadedFile("app.zip", build_zip(app_files(version)))


def field_block(page: str, name: str) -> str:
    """The markup of one field (templates/includes/field.html): from its wrapper to the
    next field's."""
    at = page.index(f'<label for="id_{name}"')
    start = page.rindex('class="field', 0, at)
    end = page.find('class="field', at)
    return page[start : end if end > 0 else len(page)]


def described_ids_exist(page: str) -> None:
    """Every id an aria-describedby names is on the page (axe: aria-valid-attr-value)."""
    ids = set(re.findall(r'\sid="([^"]+)"', page))
    for names in re.findall(r'aria-describedby="([^"]*)"', page):
        for name in names.split():
            assert name in ids, f"aria-describedby names {name}, which is not on the page"


def test_the_form_speaks_the_consoles_words(client_for, operator_user):
    page = client_for(operator_user).get("/releases/new/").content.decode()
    assert "Memory (MB)" in page and "Timeout (s)" in page
    assert "Memory mb" not in page and "Timeout s" not in page
    # Required in words beside the label, optional fields unmarked.
    assert re.search(r'<label for="id_version">Version <span class="required">required', page)
    assert re.search(r'<label for="id_notes">Notes</label>', page)
    # The artifact type is a group of radios with a legend, not a label tied to no input.
    assert re.search(r'<legend>Code <span class="required">required</span></legend>', page)
    assert '<label for="">' not in page
    # Each type's own inputs are grouped for the script that shows only the chosen one.
    inputs = {"zip": "zip_file", "image": "image", "archive": "archive_file"}
    for kind, name in inputs.items():
        group = page.split(f'<div data-artifact="{kind}">', 1)[1].split("data-artifact=")[0]
        group = group.split('name="architecture"')[0]
        assert [n for n in inputs.values() if f'name="{n}"' in group] == [name], kind
    assert '<script src="/static/js/release_form.js" defer></script>' in page
    described_ids_exist(page)


def test_a_refusal_of_the_service_goes_beside_its_field(client_for, operator_user):
    # Releases are immutable: the service refuses the version before it stores anything.
    Release.objects.create(version=DEMO_VERSION, artifact_type="zip")
    c = client_for(operator_user)
    page = c.post(
        "/releases/new/", {**FORM, "version": DEMO_VERSION, "zip_file": python_zip()}
    ).content.decode()
    assert Release.objects.count() == 1
    version = field_block(page, "version")
    assert "is already registered" in version and 'id="id_version_error"' in version
    assert 'aria-invalid="true"' in version
    # The summary above only points at the fields: the problem is not repeated there.
    summary = re.search(r'<div class="error" id="release-problems".*?</div>', page, re.S)[0]
    assert "see the fields marked below" in summary and "already registered" not in summary
    # The zip that was chosen is gone from the page: say so beside it.
    assert "Choose the file again" in field_block(page, "zip_file")
    assert "Choose the file again" not in field_block(page, "archive_file")
    described_ids_exist(page)


def test_a_bootstrap_zip_with_a_python_runtime_is_refused_beside_the_runtime(
    client_for, operator_user
):
    page = (
        client_for(operator_user)
        .post("/releases/new/", {**FORM, "zip_file": SimpleUploadedFile("go.zip", GO_ZIP)})
        .content.decode()
    )
    assert not Release.objects.exists()
    runtime = field_block(page, "runtime")
    assert "Use the runtime provided.al2023 and the handler bootstrap." in runtime


def test_a_bootstrap_zip_on_a_custom_runtime_is_registered(
    client_for, operator_user, artifact_bucket
):
    response = client_for(operator_user).post(
        "/releases/new/",
        {
            **FORM,
            "runtime": "provided.al2023",
            "handler": "bootstrap",
            "zip_file": SimpleUploadedFile("go.zip", GO_ZIP),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    release = Release.objects.get(version="2026.12.9")
    assert (release.runtime, release.handler) == ("provided.al2023", "bootstrap")


@pytest.mark.parametrize(
    ("files", "runtime", "problem"),
    [
        ({"bootstrap": b"x"}, "python3.12", "provided.al2023"),
        ({"app.py": b"x"}, "provided.al2023", "has none at its root"),
        ({"app.py": b"x", "bootstrap": b"x"}, "python3.12", None),  # a Python app's own file
        ({"bootstrap": b"x"}, "provided.al2023", None),
        ({"src/bootstrap": b"x"}, "provided.al2023", "has none at its root"),
    ],
)
def test_the_runtime_is_checked_against_the_zip(files, runtime, problem):
    form = ReleaseForm(
        {**FORM, "runtime": runtime},
        {"zip_file": SimpleUploadedFile("a.zip", build_zip(files))},
    )
    form.is_valid()
    errors = " ".join(form.errors.get("runtime", []))
    assert (problem in errors) if problem else not errors


def test_the_other_types_inputs_are_ignored_and_the_chosen_ones_asked_for():
    form = ReleaseForm(
        {**FORM, "artifact": "image", "image": ""},
        {"zip_file": SimpleUploadedFile("a.zip", GO_ZIP)},
    )
    assert not form.is_valid()
    assert form.errors["image"] == ["Name the image: repository:tag or repository@sha256:…."]
    # The zip picked before switching to an image neither counts nor fails the form.
    assert "zip_file" not in form.errors and "runtime" not in form.errors
    form = ReleaseForm({**FORM, "artifact": "image", "image": "repo:1"}, {})
    assert form.is_valid(), form.errors
    data = form.release_input()
    assert (data.runtime, data.handler, data.zip_bytes) == ("", "", None)
    form = ReleaseForm({**FORM, "artifact": "archive"}, {})
    assert not form.is_valid() and form.errors["archive_file"] == ["Choose the image archive."]


def test_refusals_name_their_fields_or_stay_above():
    form = ReleaseForm(
        {**FORM, "artifact": "archive"}, {"archive_file": SimpleUploadedFile("a.tar", b"x")}
    )
    assert form.is_valid(), form.errors
    left = form.refusal_to_fields(
        [
            "memory_mb: between 128 and 10240",
            "artifact: Not a tar archive",
            "app_settings.api.stage: too long",
            "ECR is down: try again",
        ]
    )
    assert form.errors["memory_mb"] == ["Between 128 and 10240"]
    assert form.errors["archive_file"] == ["Not a tar archive"]
    assert form.errors["app_settings"] == ["api.stage: Too long"]
    assert left == ["ECR is down: try again"]


def test_numbers_out_of_range_say_so_in_the_consoles_words():
    form = ReleaseForm({**FORM, "memory_mb": 64, "timeout_s": 901}, {})
    assert not form.is_valid()
    assert form.errors["memory_mb"] == ["At least 128 MB."]
    assert form.errors["timeout_s"] == ["At most 900 s (15 min)."]
    # The health check is measured against the timeout only once that is right.
    assert "health_timeout_s" not in form.errors
