"""The demo releases the sandbox starts with: a small Python app for Lambda, three versions.

- ``2026.11.0-demo``: notes in the tenant's database (``GET /healthz``, ``GET /notes``,
  ``POST /notes``), migration 0001 creates the table;
- ``2026.12.0-demo``: an optional author per note, through migration 0002 (a nullable
  column: expand/contract);
- ``2026.12.1-demo-broken``: the same, but its ``/healthz`` answers 500: deploying it
  stops at the canary.

The app's source is real Python in ``demo_app/`` beside this module; a release's zip holds
its handler as ``app.py`` (``app.handler``), the shared ``db.py`` and ``web.py``, a
``RELEASE`` file naming the version, and its one dependency, the pure-Python PostgreSQL
driver pg8000 with its own dependencies, copied from this environment's site-packages as
``pip install --target`` would lay them out (Lambda's runtime offers only the standard
library and boto3).

Everything is built in memory and byte for byte the same on every run (fixed timestamps,
owners and modes, sorted entries, gzip mtime 0, stored zip entries), so re-seeding a fresh
local AWS yields the same digests the console database already recorded. The vendored
packages are pinned in pyproject.toml for the same reason.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

DEMO_VERSION = "2026.11.0-demo"
DEMO_RUNTIME = "python3.12"
DEMO_HANDLER = "app.handler"
# Where the Lambda Python base images keep function code.
IMAGE_TASK_ROOT = "var/task"

APP_DIR = Path(__file__).with_name("demo_app")
# pg8000 and what it imports, as distributions: the app's only third-party code.
VENDORED = ("pg8000", "scramp", "asn1crypto", "python-dateutil", "six")
# Files pip writes about an installation rather than the package's own.
_INSTALL_RECORDS = {"INSTALLER", "RECORD", "REQUESTED", "direct_url.json"}


@dataclass(frozen=True)
class DemoSpec:
    version: str
    # The handler module, packaged as app.py, and other app modules it imports.
    app: str
    modules: tuple[str, ...]
    migrations: tuple[str, ...]
    notes: str


DEMO_RELEASES: tuple[DemoSpec, ...] = (
    DemoSpec(
        version=DEMO_VERSION,
        app="app_notes.py",
        modules=(),
        migrations=("0001_notes.sql",),
        notes="Demo app (sandbox seed): notes in the tenant database; GET /healthz, "
        "GET /notes, POST /notes.",
    ),
    DemoSpec(
        version="2026.12.0-demo",
        app="app_notes_author.py",
        modules=(),
        migrations=("0001_notes.sql", "0002_notes_author.sql"),
        notes="Demo app (sandbox seed): notes get an optional author (migration 0002 adds a "
        "nullable column).",
    ),
    DemoSpec(
        version="2026.12.1-demo-broken",
        app="app_broken_health.py",
        modules=("app_notes_author.py",),
        migrations=("0001_notes.sql", "0002_notes_author.sql"),
        notes="Demo app (sandbox seed), broken on purpose: its /healthz answers 500. "
        "Deploy it to see a rollout stop at its canary.",
    ),
)
DEMO_VERSIONS = tuple(spec.version for spec in DEMO_RELEASES)

# 1980-01-01 is the earliest time a zip entry can carry.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class DemoMigration:
    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class DemoRelease:
    version: str
    runtime: str
    handler: str
    notes: str
    files: dict[str, bytes]
    zip_bytes: bytes
    image_config: bytes
    image_layers: tuple[bytes, ...]
    migrations: tuple[DemoMigration, ...]

    @property
    def zip_sha256(self) -> str:
        return hashlib.sha256(self.zip_bytes).hexdigest()

    @property
    def zip_key(self) -> str:
        """Where the artifacts bucket keeps this zip: content-addressed, never overwritten."""
        return f"releases/sha256/{self.zip_sha256}.zip"


def spec_for(version: str) -> DemoSpec:
    for spec in DEMO_RELEASES:
        if spec.version == version:
            return spec
    raise KeyError(f"{version} is not a demo release ({', '.join(DEMO_VERSIONS)})")


@functools.cache
def vendored_files() -> dict[str, bytes]:
    """pg8000 and its dependencies as a ``pip install --target`` directory holds them:
    packages, modules and ``*.dist-info`` (pg8000 reads its own version from there), no
    bytecode and no notes about who installed them."""
    files: dict[str, bytes] = {}
    for name in VENDORED:
        distribution = metadata.distribution(name)
        for path in distribution.files or ():
            text = str(path)
            if (
                "__pycache__" in path.parts
                or text.endswith(".pyc")
                or text.startswith("..")
                or (path.parts[0].endswith(".dist-info") and path.name in _INSTALL_RECORDS)
            ):
                continue
            files[path.as_posix()] = Path(str(distribution.locate_file(path))).read_bytes()
    return files


def app_source(name: str) -> bytes:
    return (APP_DIR / name).read_bytes()


def app_files(
    version: str,
    *,
    app: str = "app_notes.py",
    modules: tuple[str, ...] = (),
    source: str | bytes | None = None,
) -> dict[str, bytes]:
    """Every file of a demo app's deployment package that runs as ``version``.

    ``app`` names the handler module in ``demo_app/`` (packaged as ``app.py``); ``source``
    replaces it with other code (tests build variants this way), which may import
    ``db``, ``web`` and ``modules``.
    """
    handler = source if source is not None else app_source(app)
    return {
        **vendored_files(),
        "RELEASE": f"{version}\n".encode(),
        "app.py": handler.encode("utf-8") if isinstance(handler, str) else handler,
        "db.py": app_source("db.py"),
        "web.py": app_source("web.py"),
        **{module: app_source(module) for module in modules},
    }


def migrations_for(names: tuple[str, ...]) -> tuple[DemoMigration, ...]:
    return tuple(
        DemoMigration(
            version=int(name.split("_", 1)[0]),
            name=name,
            sql=(APP_DIR / "migrations" / name).read_text(encoding="utf-8"),
        )
        for name in names
    )


def build_zip(files: dict[str, bytes], *, modes: dict[str, int] | None = None) -> bytes:
    """A Lambda deployment package. Entries are stored, not deflated: compressed bytes can
    differ between zlib builds, and the release's recorded sha256 must not. ``modes``
    gives a file other permissions (a custom runtime's ``bootstrap`` is 0o755)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            mode = (modes or {}).get(name, 0o644)
            info.external_attr = (0o100000 | mode) << 16  # a regular file, rw-r--r--
            info.create_system = 3  # Unix, so the mode above is honoured
            zf.writestr(info, files[name], compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


def build_layer_tar(files: dict[str, bytes], *, root: str = IMAGE_TASK_ROOT) -> bytes:
    """An uncompressed image layer holding ``files`` under ``root``, owned by root:root."""
    out = io.BytesIO()
    directories = set()
    for name in files:
        parts = f"{root.strip('/')}/{name}".split("/")[:-1]
        directories.update("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory + "/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(f"{root.strip('/')}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def build_image_config(*, version: str, diff_ids: list[str], handler: str = DEMO_HANDLER) -> bytes:
    """The image config, shaped like the Lambda Python base image's (entrypoint + handler).

    This demo image has only the app layer, no runtime underneath: it is there for the
    image code paths (push, pin by digest), not to run on AWS.
    """
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": [
                "PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
                "LANG=en_US.UTF-8",
                "TZ=:/etc/localtime",
                "LAMBDA_TASK_ROOT=/var/task",
                "LAMBDA_RUNTIME_DIR=/var/runtime",
            ],
            "Entrypoint": ["/lambda-entrypoint.sh"],
            "Cmd": [handler],
            "WorkingDir": "/var/task",
            "Labels": {"org.opencontainers.image.version": version},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"opsconsole {version}"}],
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode("utf-8")


def build_release(
    version: str, files: dict[str, bytes], migrations: tuple[DemoMigration, ...], notes: str = ""
) -> DemoRelease:
    layer_tar = build_layer_tar(files)
    layer = gzip.compress(layer_tar, mtime=0)
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()  # of the uncompressed tar
    return DemoRelease(
        version=version,
        runtime=DEMO_RUNTIME,
        handler=DEMO_HANDLER,
        notes=notes,
        files=files,
        zip_bytes=build_zip(files),
        image_config=build_image_config(version=version, diff_ids=[diff_id]),
        image_layers=(layer,),
        migrations=migrations,
    )


@functools.cache
def build_demo_release(version: str = DEMO_VERSION) -> DemoRelease:
    spec = spec_for(version)
    return build_release(
        version,
        app_files(version, app=spec.app, modules=spec.modules),
        migrations_for(spec.migrations),
        spec.notes,
    )
