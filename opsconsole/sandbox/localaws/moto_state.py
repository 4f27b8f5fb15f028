"""Reaching moto's in-process state from the extensions (same process as the server)."""

from __future__ import annotations

import re
from typing import Any

from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID

ACCOUNT_ID = DEFAULT_ACCOUNT_ID

_CREDENTIAL_REGION = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


def backend(service: str, region: str, account_id: str = ACCOUNT_ID) -> Any:
    if service == "lambda":
        # Without Docker moto keeps functions in the "lambda-simple" store; its own helper
        # picks the store in use, get_backend("lambda") would find no functions.
        from moto.awslambda.utils import get_backend as lambda_backend

        return lambda_backend(account_id, region)
    return get_backend(service)[account_id][region]  # type: ignore[call-overload]


def region_of(environ: dict[str, Any], default: str = "us-east-1") -> str:
    """The region a signed request was signed for (SigV4 credential scope)."""
    match = _CREDENTIAL_REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else default


def regions_with(service: str, account_id: str = ACCOUNT_ID) -> list[str]:
    """Regions where moto has built a backend of ``service`` so far (the ones in use)."""
    return list(get_backend(service)[account_id].keys())  # type: ignore[call-overload]
