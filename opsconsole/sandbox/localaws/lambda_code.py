"""What an execution environment runs: the function's code unpacked once, and the command
line and import path of its runtime process.

- A zip is unpacked once per content (its sha256) under ``state_dir/code``, with the zip's
  Unix mode bits (a ``bootstrap`` stays executable) and symlinks.
- ``provided.al2023`` / ``provided.al2`` run the zip's ``bootstrap`` (or a layer's).
- Layers are merged once per set into a directory that stands for ``/opt``: on the Python
  path as Lambda puts ``/opt/python``, its ``bin`` on ``PATH``, its path in ``LAYERS_ROOT``
  (code that names ``/opt`` literally does not find it here).
- ``python3.x`` runs the official runtime interface client, ``python -m awslambdaric
  <handler>``, on the machine's own interpreter without its site-packages (``-S``): the
  import path is the task root, then a runtime directory holding only awslambdaric, boto3
  and their dependencies (symlinks into this environment's site-packages), then the
  standard library. Nothing else of the console's environment (Django, psycopg...) is
  importable, so a function that forgot to package a dependency fails as it does on AWS.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import sys
import threading
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

# What the Python runtime directory holds, with everything these need.
PYTHON_RUNTIME_PACKAGES = ("awslambdaric", "boto3")
_PYTHON_RUNTIME = re.compile(r"^python(\d+)\.(\d+)$")
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class CannotRun(Exception):
    """The function cannot start here; answered to the invoke as a function error."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True)
class Launch:
    """How to start one runtime process."""

    argv: list[str]
    task_root: Path
    runtime_dir: Path
    handler: str
    # Runtime-specific variables (PYTHONPATH...), set before the function's own.
    env: dict[str, str] = field(default_factory=dict)
    # Lines the function's log gets once, when an environment starts.
    notes: tuple[str, ...] = ()


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _build_once(target: Path, fill: Callable[[Path], None]) -> Path:
    """``target``, built by ``fill`` into a scratch directory and renamed into place the
    first time (so a reader never sees half of it), then reused."""
    if target.is_dir():
        return target
    with _lock(str(target)):
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.parent / f".{target.name}.{uuid.uuid4().hex}"
        scratch.mkdir()
        try:
            fill(scratch)
            os.rename(scratch, target)
        except Exception:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return target


def unpack_zip(state_dir: Path, digest: str, data: bytes) -> Path:
    """The directory holding this zip's files (unpacked on first use, then reused)."""
    return _build_once(state_dir / "code" / digest, lambda scratch: extract_zip(data, scratch))


def extract_zip(data: bytes, dest: Path) -> None:
    import io

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        message = f"The function's zip is not readable: {exc}"
        raise CannotRun("Runtime.InvalidZipFile", message) from exc
    directories: list[tuple[str, int]] = []
    root = dest.resolve()
    with archive:
        for info in archive.infolist():
            mode = info.external_attr >> 16 if info.create_system == 3 else 0
            if stat.S_ISLNK(mode):
                path = (root / info.filename).resolve(strict=False)
                if root not in path.parents:
                    continue  # outside the task root: never written
                path.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(archive.read(info).decode("utf-8"), path)
                continue
            extracted = archive.extract(info, root)
            if mode & 0o777:
                if info.is_dir():
                    directories.append((extracted, mode))
                else:
                    os.chmod(extracted, stat.S_IMODE(mode) & 0o1777)
    for path, mode in reversed(directories):
        os.chmod(path, (stat.S_IMODE(mode) & 0o1777) | stat.S_IRWXU)


def base_python() -> str:
    """The machine's interpreter (the one this virtualenv was made from)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _closure(roots: tuple[str, ...]) -> list[metadata.Distribution]:
    found: dict[str, metadata.Distribution] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[key] = dist
        for requirement in dist.requires or []:
            spec, _, marker = requirement.partition(";")
            if "extra" in marker:
                continue
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
            if match:
                pending.append(match.group(1))
    return list(found.values())


def _top_level_entries(dist: metadata.Distribution) -> set[str]:
    entries = set()
    for file in dist.files or []:
        first = file.parts[0] if file.parts else ""
        if first and first not in ("..", "__pycache__", "bin") and not first.endswith(".pth"):
            entries.add(first)
    return entries


_runtime_dirs: dict[Path, Path] = {}


def python_runtime_dir(state_dir: Path) -> Path:
    """``state_dir/runtime/pythonX.Y``: symlinks to awslambdaric, boto3 and their
    dependencies only (built once per server start)."""
    with _lock("python-runtime"):
        if state_dir in _runtime_dirs:
            return _runtime_dirs[state_dir]
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        target = state_dir / "runtime" / version
        scratch = target.parent / f".{version}.{uuid.uuid4().hex}"
        scratch.mkdir(parents=True)
        for dist in _closure(PYTHON_RUNTIME_PACKAGES):
            for entry in _top_level_entries(dist):
                source = Path(str(dist.locate_file(entry)))
                if source.exists() and not (scratch / entry).exists():
                    os.symlink(source, scratch / entry)
        if not (scratch / "awslambdaric").exists():
            raise RuntimeError("awslambdaric is not installed in the local AWS's environment")
        if target.exists():
            shutil.rmtree(target)
        os.rename(scratch, target)
        _runtime_dirs[state_dir] = target
        return target


def python_version_note(runtime: str | None) -> str:
    """What to tell about a python3.x runtime this machine's Python stands in for ("" when
    the minor versions agree or the runtime is not Python)."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    match = _PYTHON_RUNTIME.match(runtime or "")
    if not match or f"{match.group(1)}.{match.group(2)}" == here:
        return ""
    version = f"{here}.{sys.version_info.micro}"
    return f"opsconsole sandbox: runtime {runtime} runs on Python {version} here"


def python_launch(
    *, state_dir: Path, task_root: Path, handler: str, runtime: str | None, opt: Path | None = None
) -> Launch:
    runtime_dir = python_runtime_dir(state_dir)
    note = python_version_note(runtime)
    notes: tuple[str, ...] = (note,) if note else ()
    return Launch(
        argv=[base_python(), "-S", "-m", "awslambdaric", handler],
        task_root=task_root,
        runtime_dir=runtime_dir,
        handler=handler,
        env={
            **_opt_env(opt),
            "PYTHONPATH": ":".join([str(task_root), *_opt_python(opt), str(runtime_dir)]),
            "PYTHONNOUSERSITE": "1",
            # Bytecode beside the code, not in it: the task root stays as the zip made it
            # (on AWS it is read-only), and later cold starts still skip compiling.
            "PYTHONPYCACHEPREFIX": str(state_dir / "pycache"),
        },
        notes=notes,
    )


def _opt_python(opt: Path | None) -> list[str]:
    """Where Lambda's Python looks in /opt (the layers), in its order."""
    if opt is None:
        return []
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return [str(opt / "python" / "lib" / version / "site-packages"), str(opt / "python")]


def _opt_env(opt: Path | None) -> dict[str, str]:
    if opt is None:
        return {}
    return {
        "PATH": f"/usr/local/bin:/usr/bin:/bin:{opt / 'bin'}",
        "LAYERS_ROOT": str(opt),
    }


def unpack_layers(state_dir: Path, layers: list[tuple[str, bytes]]) -> Path | None:
    """The function's layers merged as Lambda's /opt (later layers over earlier ones)."""
    if not layers:
        return None
    key = hashlib.sha256("/".join(digest for digest, _ in layers).encode()).hexdigest()[:32]

    def merge(scratch: Path) -> None:
        for _, data in layers:
            extract_zip(data, scratch)

    return _build_once(state_dir / "opt" / key, merge)


def bootstrap_launch(
    *, bootstrap: Path, task_root: Path, handler: str, args=(), opt: Path | None = None
) -> Launch:
    if not bootstrap.is_file():
        raise CannotRun(
            "Runtime.InvalidEntrypoint",
            "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]",
        )
    if not os.access(bootstrap, os.X_OK):
        raise CannotRun(
            "Runtime.InvalidEntrypoint",
            f"Error: fork/exec {bootstrap.name}: permission denied (the bootstrap is not "
            "executable; set its mode to 755 in the zip)",
        )
    return Launch(
        argv=[str(bootstrap), *args],
        task_root=task_root,
        runtime_dir=bootstrap.parent,
        handler=handler,
        env=_opt_env(opt),
    )


def zip_launch(
    *,
    state_dir: Path,
    digest: str,
    code: bytes,
    runtime: str | None,
    handler: str | None,
    layers: Sequence[tuple[str, bytes]] = (),
) -> Launch:
    """The launch of a zip function, or CannotRun saying why the sandbox cannot run it."""
    runtime = runtime or ""
    if not (runtime.startswith("python3") or runtime.startswith("provided")):
        raise CannotRun(
            "Sandbox.UnsupportedRuntime",
            f"The sandbox cannot run runtime {runtime or '(none)'}: it runs python3.x "
            "functions (with awslambdaric) and provided.al2023 / provided.al2 functions (the "
            "zip's bootstrap).",
        )
    if not code:
        raise CannotRun("Sandbox.NoCode", "The local AWS holds no code for this function.")
    task_root = unpack_zip(state_dir, digest, code)
    opt = unpack_layers(state_dir, list(layers))
    if runtime.startswith("python3"):
        if not handler:
            raise CannotRun("Runtime.HandlerNotFound", "The function has no handler.")
        return python_launch(
            state_dir=state_dir, task_root=task_root, handler=handler, runtime=runtime, opt=opt
        )
    bootstrap = task_root / "bootstrap"
    if not bootstrap.exists() and opt is not None and (opt / "bootstrap").exists():
        bootstrap = opt / "bootstrap"  # a custom runtime shipped as a layer
    return bootstrap_launch(
        bootstrap=bootstrap, task_root=task_root, handler=handler or "", opt=opt
    )
