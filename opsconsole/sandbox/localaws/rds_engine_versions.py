"""DescribeDBEngineVersions, which moto does not implement.

The console lists the PostgreSQL versions RDS offers (the tenant form's choices, the check
of a tenant's ``db_engine_version``). Here RDS offers a fixed catalogue like a region's
(every minor version upgrades to any later one; a different major version is a major
upgrade), answered for ``Engine`` / ``EngineVersion`` / ``DefaultOnly`` as RDS does.

``install()`` patches moto's RDS response class in this process: the local AWS server
installs it at start, and unit tests on in-process moto call it too.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.rds.responses import RDSResponse
from werkzeug.wrappers import Request, Response

# Oldest first, as RDS lists them; DEFAULTS is what DefaultOnly answers.
CATALOGUE: dict[str, list[str]] = {
    "postgres": ["13.20", "14.17", "15.10", "15.12", "16.4", "16.8", "17.4"],
    "aurora-postgresql": ["13.20", "14.17", "15.10", "16.4", "16.6", "17.4"],
}
DEFAULTS = {"postgres": "16.4", "aurora-postgresql": "16.4"}

_installed = False


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _family(engine: str, version: str) -> str:
    major = version.split(".")[0]
    return f"{engine}{major}"


def engine_version(engine: str, version: str) -> dict[str, Any]:
    """One DBEngineVersion as RDS describes it."""
    later = [v for v in CATALOGUE[engine] if _key(v) > _key(version)]
    return {
        "Engine": engine,
        "EngineVersion": version,
        "DBParameterGroupFamily": _family(engine, version),
        "DBEngineDescription": "PostgreSQL"
        if engine == "postgres"
        else "Aurora (PostgreSQL Compatible)",
        "DBEngineVersionDescription": f"PostgreSQL {version}",
        "Status": "available",
        "SupportedEngineModes": ["provisioned"],
        "ValidUpgradeTarget": [
            {
                "Engine": engine,
                "EngineVersion": v,
                "IsMajorVersionUpgrade": v.split(".")[0] != version.split(".")[0],
                "AutoUpgrade": False,
            }
            for v in later
        ],
    }


def describe(params: dict[str, Any]) -> list[dict[str, Any]]:
    engine = params.get("Engine")
    wanted = params.get("EngineVersion")
    default_only = str(params.get("DefaultOnly", "false")).lower() == "true"
    out = []
    for name, versions in CATALOGUE.items():
        if engine and name != engine:
            continue
        for version in versions:
            if wanted and version != wanted and not version.startswith(f"{wanted}."):
                continue
            if default_only and version != DEFAULTS[name]:
                continue
            out.append(engine_version(name, version))
    return out


def _describe_db_engine_versions(self: RDSResponse) -> ActionResult:
    params = self.params
    given = {k: params.get(k) for k in ("Engine", "EngineVersion", "DefaultOnly")}
    return ActionResult({"DBEngineVersions": describe(given)})


def install(config: Any = None) -> None:
    global _installed
    if _installed:
        return
    _installed = True
    RDSResponse.describe_db_engine_versions = _describe_db_engine_versions  # type: ignore[attr-defined]


def route(request: Request) -> Response | None:
    return None
