"""Placeholder until this extension lands: installs nothing, answers nothing."""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from opsconsole.sandbox.localaws.config import LocalAwsConfig


def install(config: LocalAwsConfig) -> None:
    return None


def route(request: Request) -> Response | None:
    return None
