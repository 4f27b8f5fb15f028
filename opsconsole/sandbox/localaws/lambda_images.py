"""Container image functions: the image's blobs from the local ECR, its layers unpacked into
a root directory, run when its entrypoint is something the sandbox can run honestly.

moto keeps no layer bytes (``CompleteLayerUpload`` records only the size), so ``install``
wraps it to keep each uploaded blob under ``state_dir/ecr-blobs``: images pushed through
ECR's layer API to this server (the console's push, the seed) can run. Runnable shapes:

- the AWS base images' ``/lambda-entrypoint.sh`` with a Python handler as the command
  (``CMD ["app.handler"]``) whose module is in the image's task root (``/var/task``):
  run with ``awslambdaric`` on the machine's Python, exactly as a python3.x zip;
- an entrypoint (or ``/lambda-entrypoint.sh`` with ``/var/runtime/bootstrap``) that is an
  executable named ``bootstrap`` inside the layers: run as a custom runtime.

Anything else answers Invoke with ``Sandbox.UnsupportedImage`` and the reason. Never a
fake success.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tarfile
import threading
import uuid
from pathlib import Path
from typing import Any

from opsconsole.sandbox.localaws.config import LocalAwsConfig
from opsconsole.sandbox.localaws.lambda_code import (
    CannotRun,
    Launch,
    bootstrap_launch,
    python_launch,
)
from opsconsole.sandbox.localaws.moto_state import backend

UNSUPPORTED = "Sandbox.UnsupportedImage"
BASE_ENTRYPOINT = "/lambda-entrypoint.sh"
_REGION_IN_HOST = re.compile(r"\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com")
_HANDLER = re.compile(r"^[A-Za-z_][\w./-]*\.[A-Za-z_]\w*$")
# Variables of the image's config that the execution environment defines itself.
_OWN_VARIABLES = {"PATH", "LD_LIBRARY_PATH", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "TZ", "LANG"}
_blob_dir: Path | None = None
_lock = threading.Lock()


def install(config: LocalAwsConfig) -> None:
    """Keep the bytes of every blob uploaded through ECR's layer API."""
    global _blob_dir
    _blob_dir = config.state_dir / "ecr-blobs"
    _blob_dir.mkdir(parents=True, exist_ok=True)
    from moto.ecr.models import ECRBackend

    original = ECRBackend.complete_layer_upload
    if getattr(original, "_keeps_blobs", False):
        return

    def complete_layer_upload(self, repository_name, upload_id, layer_digests, registry_id=None):
        repository = self.repositories.get(repository_name)
        upload = repository.uploads.get(upload_id) if repository else None
        data = bytes(upload.layer_parts) if upload is not None else None
        result = original(self, repository_name, upload_id, layer_digests, registry_id)
        if data is not None:
            _store_blob(result["layerDigest"], data)
        return result

    complete_layer_upload._keeps_blobs = True  # type: ignore[attr-defined]
    ECRBackend.complete_layer_upload = complete_layer_upload


def _blob_path(digest: str) -> Path | None:
    if _blob_dir is None or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        return None
    return _blob_dir / digest.split(":", 1)[1]


def _store_blob(digest: str, data: bytes) -> None:
    path = _blob_path(digest)
    if path is None or path.exists():
        return
    scratch = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    scratch.write_bytes(data)
    os.replace(scratch, path)


def _unsupported(uri: str, why: str) -> CannotRun:
    return CannotRun(UNSUPPORTED, f"The sandbox cannot run image {uri}: {why}")


def _manifest(ecr: Any, repository: str, image_id: dict[str, str], uri: str) -> tuple[dict, str]:
    try:
        images = ecr.batch_get_image(repository_name=repository, image_ids=[image_id])["images"]
    except Exception as exc:  # noqa: BLE001 - moto's RepositoryNotFound and friends
        raise _unsupported(uri, f"the local ECR cannot find it ({exc})") from exc
    if not images:
        raise _unsupported(uri, "the local ECR has no such image")
    image = images[0]
    return json.loads(image.image_manifest), image.get_image_digest()


def _resolve_manifest(ecr: Any, repository: str, uri: str, manifest: dict, digest: str):
    if "manifests" in manifest:  # a multi-platform index: take linux/amd64
        for entry in manifest["manifests"]:
            platform = entry.get("platform") or {}
            if platform.get("os", "linux") == "linux" and platform.get("architecture") in (
                "amd64",
                None,
            ):
                return _manifest(ecr, repository, {"imageDigest": entry["digest"]}, uri)
        raise _unsupported(uri, "its index names no linux/amd64 image")
    return manifest, digest


def _parse_uri(uri: str) -> tuple[str, str, dict[str, str]] | None:
    """``registry/repository[:tag][@sha256:...]`` as (registry, repository, image id)."""
    registry, _, rest = uri.partition("/")
    if not registry or not rest:
        return None
    rest, _, digest = rest.partition("@")
    repository, _, tag = rest.partition(":")
    if digest:
        return registry, repository, {"imageDigest": digest}
    return registry, repository, {"imageTag": tag or "latest"}


def _have(digest: str) -> bool:
    path = _blob_path(digest)
    return path is not None and path.exists()


def _read_blob(digest: str) -> bytes:
    path = _blob_path(digest)
    assert path is not None
    return path.read_bytes()


def image_launch(config: LocalAwsConfig, spec: Any) -> Launch:
    model = spec.model
    uri = (getattr(model, "code", None) or {}).get("ImageUri") or ""
    parsed = _parse_uri(uri)
    if parsed is None:
        raise _unsupported(uri or "(none)", "its ImageUri is not an ECR image reference")
    registry, repository, image_id = parsed
    region_match = _REGION_IN_HOST.search(registry)
    region = region_match.group(1) if region_match else spec.region
    ecr = backend("ecr", region)
    manifest, digest = _manifest(ecr, repository, image_id, uri)
    manifest, digest = _resolve_manifest(ecr, repository, uri, manifest, digest)
    try:
        config_digest = manifest["config"]["digest"]
        layers = [layer["digest"] for layer in manifest["layers"]]
    except (KeyError, TypeError) as exc:
        raise _unsupported(uri, f"its manifest names no config or layers ({exc})") from exc
    missing = [d for d in [config_digest, *layers] if not _have(d)]
    if missing:
        raise _unsupported(
            uri,
            f"{len(missing)} of its blobs ({missing[0]}...) are not in this local AWS. moto "
            "keeps no layer bytes, only their sizes; the sandbox keeps the blobs uploaded "
            "through ECR's layer API (InitiateLayerUpload .. CompleteLayerUpload) to this "
            "server since it started. Push the image again.",
        )
    image_config = (json.loads(_read_blob(config_digest)).get("config")) or {}
    root = _unpack(config.state_dir, digest, layers)
    overrides = getattr(model, "image_config", None)
    entrypoint = getattr(overrides, "entry_point", None) or image_config.get("Entrypoint") or []
    command = getattr(overrides, "cmd", None) or image_config.get("Cmd") or []
    entrypoint, command = list(entrypoint), list(command)
    workdir = getattr(overrides, "working_directory", None) or image_config.get("WorkingDir")
    task_root = _inside(root, workdir or "/var/task")
    variables = {}
    for item in image_config.get("Env") or []:
        name, _, value = item.partition("=")
        if name and name not in _OWN_VARIABLES:
            variables[name] = value
    launch = _choose(config, root, task_root, entrypoint, command, uri)
    return dataclasses.replace(launch, env={**variables, **launch.env})


def _choose(config, root, task_root, entrypoint, command, uri) -> Launch:
    handler = command[0] if command else ""
    if entrypoint in ([], [BASE_ENTRYPOINT]) and _HANDLER.match(handler):
        module = handler.rsplit(".", 1)[0].replace(".", "/")
        if (task_root / f"{module}.py").is_file() or (task_root / module / "__init__.py").is_file():
            runtime = _python_of(root)
            launch = python_launch(
                state_dir=config.state_dir, task_root=task_root, handler=handler, runtime=runtime
            )
            if runtime is None:
                note = (
                    "opsconsole sandbox: image handler "
                    f"{handler} runs on Python {sys.version.split()[0]} here "
                    "(the image holds no Python runtime of its own)"
                )
                launch = dataclasses.replace(launch, notes=(*launch.notes, note))
            return launch
    if entrypoint == [BASE_ENTRYPOINT]:
        bootstrap = _inside(root, "/var/runtime/bootstrap")
        if bootstrap.is_file() and os.access(bootstrap, os.X_OK) and _python_of(root) is None:
            return bootstrap_launch(
                bootstrap=bootstrap, task_root=task_root, handler=handler, args=command
            )
        raise _unsupported(
            uri,
            f"its entrypoint is {BASE_ENTRYPOINT} but its command {command} is not a Python "
            f"handler whose module is in {task_root.relative_to(root).as_posix() or '/'} "
            "and it holds no /var/runtime/bootstrap the sandbox can run",
        )
    program = (entrypoint or command)[:1]
    if program:
        path = _inside(root, program[0])
        if path.name == "bootstrap" and path.is_file() and os.access(path, os.X_OK):
            rest = [*entrypoint[1:], *command] if entrypoint else command[1:]
            return bootstrap_launch(bootstrap=path, task_root=task_root, handler=handler, args=rest)
    raise _unsupported(
        uri,
        f"its entrypoint/command {entrypoint + command} is neither an executable bootstrap in "
        f"its layers nor {BASE_ENTRYPOINT} with a Python handler in /var/task",
    )


def _python_of(root: Path) -> str | None:
    """The Python runtime an AWS base image holds (``/var/lang/bin/python3.12``)."""
    binaries = root / "var" / "lang" / "bin"
    if binaries.is_dir():
        for entry in sorted(binaries.iterdir()):
            found = re.fullmatch(r"python(3\.\d+)", entry.name)
            if found:
                return f"python{found.group(1)}"
    return None


def _inside(root: Path, path: str) -> Path:
    """``path`` of the image, under ``root``, following its symlinks inside ``root``."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    current = root
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / part
        if candidate.is_symlink() and hops < 40:
            hops += 1
            target = os.readlink(candidate)
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            current = root if target.startswith("/") else current
            continue
        current = candidate
    return current


def _unpack(state_dir: Path, digest: str, layers: list[str]) -> Path:
    target = state_dir / "images" / hashlib.sha256(digest.encode()).hexdigest()[:32]
    if target.is_dir():
        return target
    with _lock:
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        scratch.mkdir()
        try:
            for layer in layers:
                path = _blob_path(layer)
                assert path is not None
                with tarfile.open(path, mode="r:*") as tar:
                    _apply_layer(tar, scratch)
            os.rename(scratch, target)
        except Exception:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return target


def _apply_layer(tar: tarfile.TarFile, root: Path) -> None:
    for member in tar:
        parts = [p for p in member.name.split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            continue
        name = parts[-1]
        parent = root.joinpath(*parts[:-1])
        if name == ".wh..wh..opq":  # opaque directory: hide what lower layers put there
            if parent.is_dir():
                for child in parent.iterdir():
                    _remove(child)
            continue
        if name.startswith(".wh."):
            _remove(parent / name[4:])
            continue
        if member.ischr() or member.isblk() or member.isfifo():
            continue
        dest = root.joinpath(*parts)
        if dest.is_symlink() or (dest.exists() and not (dest.is_dir() and member.isdir())):
            _remove(dest)
        member.name = "/".join(parts)
        try:
            tar.extract(member, root, set_attrs=True, numeric_owner=True, filter="tar")
        except (tarfile.FilterError, OSError):
            continue
        if member.isdir():
            os.chmod(dest, stat.S_IMODE(member.mode) | stat.S_IRWXU)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
