"""Job kinds: a name, a label and ordered steps, each a plain function.

A step function takes ``(job, step)`` and returns a dict that is saved as the step's output
(identifiers it saw or made). It must be idempotent: a step can run again after a crash.
It raises ``StepWait`` to be re-checked later without holding a worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

StepFn = Callable[..., dict[str, Any] | None]


class StepWait(Exception):  # noqa: N818 - not an error: a planned pause
    """The step is not done yet: check again in ``retry_in`` seconds."""

    def __init__(self, detail: str, *, retry_in: int = 15):
        super().__init__(detail)
        self.detail = detail
        self.retry_in = retry_in


@dataclass(frozen=True)
class StepDef:
    name: str
    label: str
    fn: StepFn


@dataclass
class JobKind:
    name: str
    label: str
    steps: list[StepDef] = field(default_factory=list)
    on_success: Callable[..., None] | None = None
    on_failure: Callable[..., None] | None = None


_KINDS: dict[str, JobKind] = {}


def register_job_kind(
    name: str,
    *,
    label: str,
    steps: list[tuple[str, str, StepFn]],
    on_success: Callable[..., None] | None = None,
    on_failure: Callable[..., None] | None = None,
) -> JobKind:
    kind = JobKind(
        name=name,
        label=label,
        steps=[StepDef(n, lbl, fn) for n, lbl, fn in steps],
        on_success=on_success,
        on_failure=on_failure,
    )
    _KINDS[name] = kind
    return kind


def get_kind(name: str) -> JobKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise LookupError(f"Unknown job kind {name!r}") from None


def kind_label(name: str) -> str:
    kind = _KINDS.get(name)
    return kind.label if kind else name
