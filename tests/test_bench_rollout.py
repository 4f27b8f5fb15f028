"""bench/rollout.py at a few tenants: its summary line parses, the rollout succeeded at
2 control-plane calls per tenant, nothing was throttled, and the preview's estimate (the
fleet model) is within 15 % of the time measured. About a minute and a half (it onboards
its tenants and starts its own local AWS, workers, beat and gunicorn): marked long."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = [pytest.mark.long, pytest.mark.integration]

ROOT = Path(__file__).resolve().parent.parent


def summary(output: str) -> dict[str, str]:
    lines = [line for line in output.splitlines() if line.startswith("bench rollout: ")]
    assert lines, output[-3000:]
    pairs = lines[-1].removeprefix("bench rollout: ").split()
    return dict(pair.split("=", 1) for pair in pairs)


@pytest.mark.timeout(600)
def test_a_small_rollout_bench_meets_its_estimate(transactional_db):
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    # The test database (migrated by pytest-django), not the console's.
    env["DATABASE_URL"] = (
        f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env.pop("AWS_ENDPOINT_URL", None)
    done = subprocess.run(
        [sys.executable, "bench/rollout.py", "--tenants", "6", "--sample", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    got = summary(done.stdout)
    assert got["status"] == "succeeded"
    assert got["tenants"] == "6"
    assert int(got["calls"]) == 2 * 6  # UpdateFunctionCode with Publish, UpdateAlias
    assert got["throttled"] == "0"
    wall, estimate = float(got["wall_s"]), float(got["estimate_s"])
    assert abs(estimate - wall) <= 0.15 * wall, (estimate, wall)
    assert float(got["ratio_to_bound"]) >= 1.0  # nothing beats the bound
    for key in ("speedup_vs_careful", "ratio_to_plain", "console_cpu_ms_per_tenant"):
        assert float(got[key]) > 0
    # The roll back moved each alias back: one call a tenant, none redeployed.
    assert got["rollback_status"] == "succeeded"
    assert int(got["rollback_calls"]) == 6 and got["rollback_redeployed"] == "0"
