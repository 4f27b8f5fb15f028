from __future__ import annotations

import zipfile

from django import forms

from deployments.models import Traffic
from deployments.releases import ReleaseInput
from deployments.rollouts import Strategy, Target
from tenants.provisioning import health_check


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data]
        return [single(data, initial)] if data else []


# What each artifact type asks for; the inputs of the other types are hidden
# (static/js/release_form.js) and ignored here.
ARTIFACT_INPUTS = {
    "zip": ("zip_file", "runtime", "handler"),
    "image": ("image",),
    "archive": ("archive_file",),
}
ARTIFACT_MISSING = {
    "zip_file": "Choose the zip package.",
    "archive_file": "Choose the image archive.",
    "image": "Name the image: repository:tag or repository@sha256:….",
}


def zip_root_names(upload) -> set[str] | None:
    """The file names at the zip's root, or None if it is no zip (the service says why)."""
    try:
        with zipfile.ZipFile(upload) as archive:
            return {n for n in archive.namelist() if "/" not in n.rstrip("/")}
    except (zipfile.BadZipFile, OSError):
        return None
    finally:
        upload.seek(0)


def runtime_problem(names: set[str], runtime: str) -> str | None:
    """A runtime Lambda would start and then fail to run this zip with (an init error on
    every request), or None."""
    has_bootstrap = "bootstrap" in names
    has_python = any(n.endswith(".py") for n in names)
    if runtime.startswith("python") and has_bootstrap and not has_python:
        return (
            "This zip has a bootstrap at its root and no Python: a custom runtime (Go, "
            "Rust). Use the runtime provided.al2023 and the handler bootstrap."
        )
    if runtime.startswith("provided") and not has_bootstrap:
        return f"{runtime} runs the zip's bootstrap file, and this zip has none at its root."
    return None


class ReleaseForm(forms.Form):
    version = forms.CharField(
        max_length=64,
        help_text="Such as 2026.12.0: letters, digits, '.', '-' and '_'. It becomes the "
        "image tag and cannot change.",
    )
    notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="What changed, for whoever deploys it.",
    )
    artifact = forms.ChoiceField(
        label="Code",
        widget=forms.RadioSelect,
        initial="zip",
        choices=[
            ("zip", "A zip package, uploaded here (kept in S3 under its sha256)"),
            ("image", "A container image already in ECR, by tag or digest"),
            ("archive", "An image archive (docker save or OCI tar), uploaded and pushed to ECR"),
        ],
    )
    zip_file = forms.FileField(
        required=False,
        label="Zip package",
        help_text="The code at the zip's root: app.py and its packages for Python, a "
        "bootstrap executable for a custom runtime (Go, Rust).",
    )
    archive_file = forms.FileField(
        required=False,
        label="Image archive",
        help_text="The tar that docker save (or an OCI layout) writes.",
    )
    image = forms.CharField(
        required=False,
        label="Image in ECR",
        help_text="repository:tag or repository@sha256:…, or the image's full ECR URI.",
    )
    runtime = forms.CharField(
        required=False,
        initial="python3.12",
        help_text="The Lambda runtime: python3.12 for Python, provided.al2023 for a "
        "bootstrap (Go, Rust). Picked from the zip when you choose it.",
    )
    handler = forms.CharField(
        required=False,
        initial="app.handler",
        help_text="module.function for Python (app.handler); bootstrap for a custom runtime.",
    )
    architecture = forms.ChoiceField(
        choices=[("x86_64", "x86_64 (Intel, AMD)"), ("arm64", "arm64 (Graviton)")],
        help_text="What the code was built for; a binary for the other one does not start.",
    )
    memory_mb = forms.IntegerField(
        label="Memory (MB)",
        initial=256,
        min_value=128,
        max_value=10240,
        error_messages={"min_value": "At least 128 MB.", "max_value": "At most 10,240 MB."},
        help_text="128 to 10,240; Lambda gives CPU in proportion. A tenant may override it.",
    )
    timeout_s = forms.IntegerField(
        label="Timeout (s)",
        initial=30,
        min_value=1,
        max_value=900,
        error_messages={"min_value": "At least 1 s.", "max_value": "At most 900 s (15 min)."},
        help_text="How long one request may run, 1 to 900 (an HTTP API stops waiting at 30).",
    )
    migrations = MultipleFileField(
        required=False,
        label="Database migrations (SQL files)",
        help_text="0001_init.sql, 0002_…: every migration of the release, in order. Each "
        "tenant's database gets those it has not run yet, before traffic moves.",
    )
    # Left out or empty: the defaults (GET /healthz, 2xx, 5 s), as in the API.
    health_method = forms.ChoiceField(
        choices=[(m, m) for m in health_check.METHODS],
        initial="GET",
        required=False,
        label="Health check method",
    )
    health_path = forms.CharField(
        max_length=255,
        initial="/healthz",
        required=False,
        label="Health check path",
        help_text="The app's own route, sent to each new version before traffic moves to it.",
    )
    health_statuses = forms.CharField(
        max_length=100,
        initial="200-299",
        required=False,
        label="Healthy statuses",
        help_text="Statuses and ranges, comma separated: 200-299,301",
    )
    health_timeout_s = forms.IntegerField(
        initial=5,
        min_value=1,
        required=False,
        label="Health check timeout (s)",
        help_text="At most the function's timeout (and 30 s, an HTTP API's limit).",
    )

    app_settings = forms.CharField(
        required=False,
        label="App settings (JSON)",
        widget=forms.Textarea(
            attrs={
                "rows": 4,
                "placeholder": '{"api": {"payload_format": "1.0"}}',
                "spellcheck": "false",
            }
        ),
        help_text="What the code expects of every tenant's stack: environment (names and "
        "templates, such as DATABASE_URL), api (payload format, stage, CORS, access logs, "
        "throttling), permissions (IAM statements), ssm_variables, alarms. Blank: the "
        "defaults. The full list is in docs/app-contract.md of the console's repository.",
    )

    _HEALTH_DEFAULTS = {
        "health_method": "GET",
        "health_path": "/healthz",
        "health_statuses": "200-299",
        "health_timeout_s": 5,
    }

    def clean(self):
        """Each health check field gets its own error, as the service would refuse it."""
        data = super().clean()
        for name, default in self._HEALTH_DEFAULTS.items():
            if name not in self.errors and data.get(name) in (None, ""):
                data[name] = default
        found = health_check.problems(
            method=data.get("health_method", ""),
            path=data.get("health_path", ""),
            statuses=data.get("health_statuses", ""),
            timeout_s=data.get("health_timeout_s"),
            function_timeout_s=max(1, data.get("timeout_s") or 1),
        )
        if "timeout_s" in self.errors:
            found.pop("health_timeout_s", None)  # measured against a timeout that is wrong
        for name, problem in found.items():
            if name not in self.errors:
                self.add_error(name, problem)
        self._clean_artifact(data)
        return data

    def _clean_artifact(self, data: dict) -> None:
        """The chosen artifact's own inputs, beside them; the other types' are dropped."""
        chosen = ARTIFACT_INPUTS.get(data.get("artifact", ""), ())
        for name in {n for names in ARTIFACT_INPUTS.values() for n in names} - set(chosen):
            data[name] = None if name.endswith("_file") else ""
        for name in chosen:
            if name in ARTIFACT_MISSING and not data.get(name) and name not in self.errors:
                self.add_error(name, ARTIFACT_MISSING[name])
        upload = data.get("zip_file")
        runtime = (data.get("runtime") or "").strip()
        if upload and runtime and "runtime" not in self.errors:
            names = zip_root_names(upload)
            problem = runtime_problem(names, runtime) if names is not None else None
            if problem:
                self.add_error("runtime", problem)

    # The service's refusals start with the input they concern ("memory_mb: ..."); those
    # go beside their field, and what names none stays above the form.
    _REFUSAL_FIELDS = {"artifact": {"zip": "zip_file", "archive": "archive_file"}}

    def refusal_to_fields(self, problems: list[str]) -> list[str]:
        """Put each of the service's problems beside its field; return those left over."""
        left: list[str] = []
        artifact = self.cleaned_data.get("artifact", "")
        for problem in problems:
            name, sep, text = problem.partition(": ")
            head = name.split(".", 1)[0]
            field = self._REFUSAL_FIELDS.get(head, {}).get(artifact, head)
            if not sep or field not in self.fields or " " in name:
                left.append(problem)
                continue
            text = text[:1].upper() + text[1:]
            if head != name:  # app_settings.api.stage: say which key
                text = f"{name.split('.', 1)[1]}: {text}"
            self.add_error(field, text)
        return left

    def release_input(self) -> ReleaseInput:
        data = self.cleaned_data
        files = data.get("migrations") or []
        return ReleaseInput(
            version=data["version"],
            artifact=data["artifact"],
            notes=data["notes"],
            zip_bytes=data["zip_file"].read() if data.get("zip_file") else None,
            archive_bytes=data["archive_file"].read() if data.get("archive_file") else None,
            image=data["image"],
            runtime=data["runtime"],
            handler=data["handler"],
            architecture=data["architecture"],
            memory_mb=data["memory_mb"],
            timeout_s=data["timeout_s"],
            migration_files=sorted((f.name, f.read()) for f in files),
            health_method=data["health_method"],
            health_path=data["health_path"],
            health_statuses=data["health_statuses"],
            health_timeout_s=data["health_timeout_s"],
            app_settings=data.get("app_settings") or "",
        )


class RolloutForm(forms.Form):
    target = forms.ChoiceField(
        choices=[
            ("all", "Every active tenant not on this release"),
            ("rings", "Rings"),
            ("tags", "Tags (key=value)"),
            ("tenants", "Hand-picked tenants"),
        ],
        initial="all",
    )
    values = forms.CharField(
        required=False, help_text="Rings (0, 1), tags (plan=pro) or slugs, comma separated."
    )
    on_conflict = forms.ChoiceField(
        choices=[("wait", "Wait for the other rollout"), ("skip", "Skip the tenant")],
        initial="wait",
        label="Tenant in another rollout",
    )
    max_parallel = forms.IntegerField(
        min_value=1,
        max_value=100,
        initial=10,
        label="Max parallel (per AWS account and region)",
        help_text="Deployments in flight at once in each account and region: each has its "
        "own Lambda budget, so each account's share advances side by side.",
    )
    canary_max_failures = forms.IntegerField(min_value=0, initial=0)
    wave_failure_pct = forms.IntegerField(min_value=0, max_value=100, initial=10)
    bake_s = forms.IntegerField(min_value=0, initial=300, label="Bake time between waves (s)")
    traffic = forms.ChoiceField(choices=Traffic.choices, initial=Traffic.ALL_AT_ONCE)
    canary_percent = forms.IntegerField(min_value=1, max_value=99, initial=10)
    canary_minutes = forms.IntegerField(min_value=1, max_value=120, initial=10)
    confirm_downgrade = forms.BooleanField(required=False)

    def __init__(self, data=None, *args, only_tenants: list[str] | None = None, **kwargs):
        """``only_tenants``: the user sees these tenants only, so names them one by one
        (deployments.rollout_scope.target_refusal); the form opens with all of them."""
        if data is None or "target" not in data:
            # The preview opens with the defaults a careful operator would pick.
            defaults = Strategy.default()
            data = {
                "target": "all" if only_tenants is None else "tenants",
                "values": ", ".join(only_tenants or []),
                "on_conflict": "wait",
                "max_parallel": defaults.max_parallel,
                "canary_max_failures": defaults.canary_max_failures,
                "wave_failure_pct": defaults.wave_failure_pct,
                "bake_s": defaults.bake_s,
                "traffic": defaults.traffic,
                "canary_percent": defaults.canary_percent,
                "canary_minutes": defaults.canary_minutes,
            }
        super().__init__(data, *args, **kwargs)

    def get_target(self) -> Target:
        data = self.cleaned_data
        values = [v.strip() for v in data["values"].split(",") if v.strip()]
        return Target(kind=data["target"], values=values, on_conflict=data["on_conflict"])

    def get_strategy(self) -> Strategy:
        data = self.cleaned_data
        return Strategy(
            max_parallel=data["max_parallel"],
            canary_max_failures=data["canary_max_failures"],
            wave_failure_pct=data["wave_failure_pct"],
            bake_s=data["bake_s"],
            traffic=data["traffic"],
            canary_percent=data["canary_percent"],
            canary_minutes=data["canary_minutes"],
        )
