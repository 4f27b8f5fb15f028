"""The demo release the sandbox starts with: a tiny Python Lambda app and its first migration.

Everything is built in memory and byte for byte the same on every run (fixed timestamps,
owners and modes, sorted entries, gzip mtime 0, stored zip entries), so re-seeding a fresh
moto server yields the same digests the console database already recorded.
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

DEMO_VERSION = "2026.11.0-demo"
DEMO_RUNTIME = "python3.12"
DEMO_HANDLER = "app.handler"
# Where the Lambda Python base images keep function code.
IMAGE_TASK_ROOT = "var/task"

_APP_SOURCE = '''\
"""Demo tenant app {version}: a health answer for the console, JSON for HTTP API calls."""

import json

RELEASE = "{version}"


def handler(event, context):
    event = event if isinstance(event, dict) else {{}}
    if event.get("health") is True:
        return {{"ok": True, "release": RELEASE}}
    http = event.get("requestContext", {{}}).get("http", {{}})
    body = {{
        "release": RELEASE,
        "method": http.get("method", "GET"),
        "path": event.get("rawPath") or http.get("path") or "/",
    }}
    return {{
        "statusCode": 200,
        "headers": {{"content-type": "application/json"}},
        "body": json.dumps(body),
    }}
'''

_MIGRATIONS = [
    (
        1,
        "0001_init.sql",
        """\
CREATE TABLE items (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku         text        NOT NULL UNIQUE,
    name        text        NOT NULL,
    quantity    integer     NOT NULL DEFAULT 0 CHECK (quantity >= 0),
    price_cents integer     NOT NULL DEFAULT 0 CHECK (price_cents >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX items_created_at_idx ON items (created_at);
""",
    ),
]

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


def app_files(version: str) -> dict[str, bytes]:
    return {"app.py": _APP_SOURCE.format(version=version).encode("utf-8")}


def build_zip(files: dict[str, bytes]) -> bytes:
    """A Lambda deployment package. Entries are stored, not deflated: compressed bytes can
    differ between zlib builds, and the release's recorded sha256 must not."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            info.create_system = 3  # Unix, so the mode above is honoured
            zf.writestr(info, files[name], compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


def build_layer_tar(files: dict[str, bytes], *, root: str = IMAGE_TASK_ROOT) -> bytes:
    """An uncompressed image layer holding ``files`` under ``root``, owned by root:root."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        parts = root.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            info = tarfile.TarInfo("/".join(parts[:depth]) + "/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(f"{root.strip('/')}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def build_image_config(*, version: str, diff_ids: list[str]) -> bytes:
    """The image config, shaped like the Lambda Python base image's (entrypoint + handler).

    This demo image has only the app layer, no runtime underneath: it is there for the
    image code paths (push, pin by digest, deploy under moto), not to run on AWS.
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
            "Cmd": [DEMO_HANDLER],
            "WorkingDir": "/var/task",
            "Labels": {"org.opencontainers.image.version": version},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"opsconsole {version}"}],
    }
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode("utf-8")


@functools.cache
def build_demo_release(version: str = DEMO_VERSION) -> DemoRelease:
    files = app_files(version)
    layer_tar = build_layer_tar(files)
    layer = gzip.compress(layer_tar, mtime=0)
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()  # of the uncompressed tar
    return DemoRelease(
        version=version,
        runtime=DEMO_RUNTIME,
        handler=DEMO_HANDLER,
        files=files,
        zip_bytes=build_zip(files),
        image_config=build_image_config(version=version, diff_ids=[diff_id]),
        image_layers=(layer,),
        migrations=tuple(DemoMigration(v, name, sql) for v, name, sql in _MIGRATIONS),
    )
