"""bench rollout: one release to N tenants (1,000 by default) with the console as deployed,
against Lambda modelled behind botocore, beside the loops a team would otherwise run.

What is real: the local AWS (moto plus opsconsole/sandbox/localaws) with its Lambda model
armed (lambda_model.py: 100 ms per call, InProgress for 5 s after an update with 409s for
a second one, TooManyRequestsException above 15 control-plane calls/s per account and
region, Invoke answered healthy by the model); Celery workers (prefork), beat and gunicorn
started as `make run` starts them, on the real Redis broker; the rollout started through
the JSON API (preview, then start, as CI does) and run by the ``tenant_deploy`` pipeline
and the orchestrator, every step as in production, with the product's rate budget
(LAMBDA_CONTROL_RATE/BURST in Redis) and default strategy (``Strategy.default()``: max
parallel from ``default_max_parallel()``). The migration step runs the release's migration
(2026.12.0-demo adds a column) on each tenant's own PostgreSQL database.

Tenants are onboarded for real first, by the same workers (``tenant_provision``: network,
database on the shared instance, secret, role, log group, function, version and alias,
schema, API, alarm topic, alarms, verify), with the model armed at zero latency and no
limit so that setup is quick; each gets its own resources and records. Then the model is
re-armed with Lambda's figures and its counters reset: only the rollout is measured.

In the same run, with the same model: the careful sequential loop (update, wait until
Successful, publish, alias, health check: boto3 as a script would) on ``--sample``
tenants, scaled to the fleet, and the plain CI loop (``update-function-code`` per tenant,
one after another, no wait) over every tenant.

Deviations from the product's defaults are named in the output: ``--bake-s`` (0 unless
given; the product waits ROLLOUT_DEFAULT_BAKE_S, 300 s, after each wave), ``--max-parallel``
(only when given) and the workers (``--workers`` x ``--concurrency``; `make run` starts
1 x 4). ``--accounts K`` registers K-1 more AWS accounts (cells, each seeded with its
baseline) and spreads the tenants over them round-robin; the bound is then the busiest
account's calls at its budget.

Rows are ``brl<run>-*`` tenants (tag ``bench=<run>``) in the console's database
(DATABASE_URL) and their ``tenant_brl<run>_*`` databases; they are removed at the end.

    python bench/rollout.py [--tenants 1000] [--sample 50] [--bake-s 0]

The last line: ``bench rollout: tenants=N wall_s=... bound_s=... ratio_to_bound=...
estimate_s=... ratio_to_estimate=... calls=... throttled=... speedup_vs_careful=...
ratio_to_plain=... console_cpu_ms_per_tenant=... ...`` with each goal's ratio
(``*_goal_ratio``: at most 1 meets the goal).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _rollout_stack import (  # noqa: E402
    BackendSampler,
    RssSampler,
    Stack,
    env_for,
    server_pids,
    tree_cpu_s,
)

OLD, NEW = "2026.11.0-demo", "2026.12.0-demo"
# Issue 14's goals.
GOAL_RATIO_TO_BOUND = 1.1
GOAL_SPEEDUP_VS_CAREFUL = 40.0
GOAL_RATIO_TO_PLAIN = 1.5
GOAL_CPU_MS = 20.0
IDLE_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=50, help="careful loop: tenants run")
    parser.add_argument("--bake-s", type=int, default=0, help="product default: 300")
    parser.add_argument(
        "--max-parallel", type=int, default=None, help="default: the product's (Strategy.default)"
    )
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="prefork children each")
    parser.add_argument(
        "--accounts", type=int, default=1, help="tenants spread over this many AWS accounts"
    )
    parser.add_argument("--onboard-timeout-s", type=float, default=3600)
    args = parser.parse_args()
    if args.accounts < 1:
        raise SystemExit("--accounts: at least 1")
    args.sample = min(args.sample, args.tenants)

    run = uuid.uuid4().hex[:6]
    logs = Path(tempfile.mkdtemp(prefix=f"bench-rollout-{run}-"))
    print(f"logs: {logs}", flush=True)
    stack = Stack(logs=logs, env={})
    try:
        aws_url = stack.start_aws()
        stack.env = env_for(aws_url=aws_url, run=run)
        os.environ.update(stack.env)
        _run(args, stack, run)
    finally:
        stack.stop()


def _run(args, stack: Stack, run: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsconsole.settings")
    import django

    django.setup()
    from django.conf import settings

    from opsconsole.aws.clients import aws_account
    from opsconsole.sandbox.seed import sandbox_seed

    prefix = f"brl{run}-"
    stack.model("POST", latency_s=0, update_s=0, limit=1_000_000)
    sandbox_seed(releases=(OLD, NEW))
    accounts = [None, *_register_accounts(args.accounts - 1, run)]
    for account in accounts[1:]:
        with aws_account(account):  # each cell's own baseline, as docs/accounts.md asks
            sandbox_seed(releases=(OLD, NEW))
    args.account_rows = accounts
    stack.start_console(workers=args.workers, concurrency=args.concurrency)
    try:
        t0 = time.monotonic()
        reruns = _onboard(args, stack, prefix, run)
        onboard_s = time.monotonic() - t0
        print(
            f"onboarded {args.tenants} tenants in {onboard_s:.0f} s (model at 0 latency; "
            f"{reruns} onboardings run again)",
            flush=True,
        )
        measured = _measured(args, settings, _rollout(args, stack, run, prefix))
        back = _rollback(args, stack, measured["rollout_id"], settings)
        careful = _careful_loop(args, prefix)
        plain = _plain_loop(args, stack, prefix)
        _summary(args, measured, careful, plain, back)
    finally:
        stack.stop()
        _cleanup(prefix, run)


# --- setup -------------------------------------------------------------------------------


def _register_accounts(count: int, run: str) -> list:
    """Cells beside the console's own account: moto answers AssumeRole into any account
    and keeps each one's resources (and, in the Lambda model, its 15/s) apart."""
    from opsconsole.awsaccounts.models import AwsAccount

    rows = []
    for i in range(count):
        account_id = f"{200000000000 + int(run, 16) % 10**6 * 100 + i + 1}"
        rows.append(
            AwsAccount.objects.create(
                name=f"brl{run}-cell{i + 2}",
                account_id=account_id,
                role_arn=f"arn:aws:iam::{account_id}:role/opsconsole-cell",
                external_id=f"bench-{run}",
                regions=[os.environ.get("AWS_DEFAULT_REGION", "us-east-1")],
            )
        )
    return rows


def _onboard(args, stack: Stack, prefix: str, run: str) -> int:
    """Onboard every tenant through the workers; a tenant whose onboarding failed is
    onboarded again (what *Retry* does: the steps are idempotent), at most twice. moto is
    not thread-safe when resources are created at this rate (an IAM or Secrets Manager
    call now and then answers 500, "dictionary changed size during iteration"); AWS
    would not. Returns how many onboardings were run again."""
    from opsconsole.jobs.models import Job
    from opsconsole.jobs.services import job_create
    from tenants.models import Tenant

    slugs = []
    for i in range(args.tenants):
        tenant = Tenant.objects.create(
            name=f"Bench rollout {i}",
            slug=f"{prefix}{i:05d}",
            region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            ring=0 if i == 0 else 1,
            tags={"bench": run},
            desired_release=OLD,
            aws_account=args.account_rows[i % len(args.account_rows)],
        )
        slugs.append(tenant.slug)
    deadline = time.monotonic() + args.onboard_timeout_s
    reruns = 0
    for attempt in range(3):
        ids = [
            job_create(kind="tenant_provision", subject_type="tenant", subject_id=slug).pk
            for slug in slugs
        ]
        jobs = Job.objects.filter(pk__in=ids)
        while left := jobs.exclude(status__in=["succeeded", "failed", "cancelled"]).count():
            stack.check()
            if time.monotonic() > deadline:
                raise SystemExit(f"onboarding: {left} tenants not done in time")
            time.sleep(2)
        failed = list(jobs.exclude(status="succeeded").values_list("subject_id", "error"))
        if not failed:
            return reruns
        print(f"onboarding round {attempt + 1}: {len(failed)} failed, first: {failed[0]}")
        slugs = [slug for slug, _ in failed]
        reruns += len(slugs)
    raise SystemExit(f"onboarding failed three times: {failed[:3]}")


def _api_token() -> str:
    from opsconsole.accounts.models import User
    from opsconsole.api.tokens import api_token_create

    user, _ = User.objects.get_or_create(username="bench-rollout", defaults={"role": "admin"})
    _, raw = api_token_create(user=user, name="bench rollout", role="operator")
    return raw


def _api(port: int, token: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(  # noqa: S310 - the bench's own gunicorn
        f"http://127.0.0.1:{port}/api/v1{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310
        return json.loads(answer.read())


# --- the rollout -------------------------------------------------------------------------


def _rollout(args, stack: Stack, run: str, prefix: str) -> dict:
    from django.conf import settings

    from deployments.models import Rollout
    from tenants import naming

    token = _api_token()
    body = {"release": NEW, "target": "tags", "values": [f"bench={run}"], "bake_s": args.bake_s}
    if args.max_parallel:
        body["max_parallel"] = args.max_parallel
    preview = _api(stack.web_port, token, "/rollouts/preview", body)
    # Lambda's figures from here on; the counters start at zero.
    stack.model("POST", latency_s=0.1, update_s=5, limit=15)
    pg, redis = server_pids("postgres", 5432), server_pids("redis", _redis_port())
    roots = stack.console_pids()
    # What the console's processes spend doing nothing (broker polls, beat, gunicorn),
    # so the per-tenant figure can be read with and without it.
    idle0 = tree_cpu_s(roots)
    time.sleep(IDLE_S)
    idle_per_s = (tree_cpu_s(roots) - idle0) / IDLE_S
    aws = [stack.aws.pid] if stack.aws else []

    def cpu_now() -> dict[str, float]:
        return {
            "console": tree_cpu_s(roots),
            "pg": tree_cpu_s(pg),
            "redis": tree_cpu_s(redis),
            "aws": tree_cpu_s(aws),
        }

    before = cpu_now()
    rss = RssSampler([p.pid for n, p in stack.console.items() if n.startswith("worker")])
    own = BackendSampler(pg, [settings.DATABASES["default"]["NAME"], naming.db_name(prefix)])
    started = time.monotonic()
    rollout_id = _api(stack.web_port, token, "/rollouts/", body)["id"]
    status = Rollout.objects.filter(pk=rollout_id).values_list("status", flat=True)
    while status.first() not in ("succeeded", "cancelled", "halted", "failed"):
        stack.check()
        rss.sample()
        own.sample()
        time.sleep(0.2)
    polled_s = time.monotonic() - started
    after = cpu_now()
    model = stack.model()
    rollout = Rollout.objects.get(pk=rollout_id)
    return {
        "rollout": rollout,
        "preview": preview,
        "polled_s": polled_s,
        "cpu_s": {k: after[k] - before[k] for k in before} | {"pg_own": own.cpu_s()},
        "servers": {"pg": pg, "redis": redis},
        "model": model,
        "rss_mb": rss.peak_mb(),
        "idle_per_s": idle_per_s,
    }


def _rollback(args, stack: Stack, rollout_id: int, settings) -> dict:
    """Roll the rollout back as an operator would (the API's default: aliases moved back)
    under the same model: its wall time against its calls at the budget."""
    from deployments.models import Deployment, Rollout
    from opsconsole.jobs.models import JobStep

    token = _api_token()
    stack.model("POST", latency_s=0.1, update_s=5, limit=15)  # counters from zero
    started = time.monotonic()
    created = _api(stack.web_port, token, f"/rollouts/{rollout_id}/rollback", {"method": "alias"})
    ids = [r["id"] for r in created["rollouts"]]
    rows = Rollout.objects.filter(pk__in=ids)
    while any(
        st not in ("succeeded", "cancelled", "halted")
        for st in rows.values_list("status", flat=True)
    ):
        stack.check()
        time.sleep(0.2)
    polled_s = time.monotonic() - started
    model = stack.model()
    deployments = Deployment.objects.filter(rollout_id__in=ids)
    ends = [d.finished_at for d in deployments if d.finished_at]
    first = min(r.created_at for r in rows)
    wall_s = (max(ends) - first).total_seconds() if ends else polled_s
    calls = sum(model["control"].values())
    fallbacks = (
        JobStep.objects.filter(job_id__in=deployments.values("job_id"), name="back_check")
        .exclude(output__fallback="")
        .count()
    )
    budget_s = calls / settings.LAMBDA_CONTROL_RATE
    result = {
        "wall_s": wall_s,
        "calls": calls,
        "throttled": sum(model["throttled"].values()),
        "budget_s": budget_s,
        "fallbacks": fallbacks,
        "status": ",".join(sorted(set(rows.values_list("status", flat=True)))),
        "tenants": deployments.count(),
    }
    print(
        f"rollback by alias: {result['tenants']} tenants in {wall_s:.1f} s, {calls} control "
        f"calls ({budget_s:.0f} s at the budget), {fallbacks} redeployed instead, "
        f"throttled {result['throttled']}, {result['status']}",
        flush=True,
    )
    return result


def _redis_port() -> int:
    from urllib.parse import urlsplit

    return urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")).port or 6379


# --- the loops a team would run ----------------------------------------------------------


def _lambda_clients(args) -> list:
    """A Lambda client per account (the cells through AssumeRole, as a team's script
    would), as the AWS CLI v2 calls: standard retries, 3 attempts; the same model."""
    import boto3
    from botocore.config import Config

    common = {
        "endpoint_url": os.environ["AWS_ENDPOINT_URL"],
        "region_name": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "config": Config(retries={"mode": "standard", "max_attempts": 3}),
    }
    own = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}  # noqa: S106
    clients = [boto3.client("lambda", **common, **own)]
    sts = boto3.client("sts", **common, **own)
    for account in args.account_rows[1:]:
        got = sts.assume_role(
            RoleArn=account.role_arn, RoleSessionName="bench", ExternalId=account.external_id
        )["Credentials"]
        clients.append(
            boto3.client(
                "lambda",
                **common,
                aws_access_key_id=got["AccessKeyId"],
                aws_secret_access_key=got["SecretAccessKey"],
                aws_session_token=got["SessionToken"],
            )
        )
    return clients


def _code(version: str) -> dict:
    from deployments.models import Release

    release = Release.objects.get(version=version)
    return {"S3Bucket": release.zip_bucket, "S3Key": release.zip_key}


def _careful_loop(args, prefix: str) -> dict:
    """Update, wait until Successful (the CLI's function-updated-v2 waiter), publish, move
    the alias, check health through the alias: tenant after tenant."""
    clients = _lambda_clients(args)
    code = _code(OLD)  # the release before: a real change on every function
    event = {"version": "2.0", "rawPath": "/healthz", "requestContext": {"http": {"method": "GET"}}}
    started = time.monotonic()
    for i in range(args.sample):
        name = f"opsconsole-{prefix}{i:05d}"
        lam = clients[i % len(clients)]
        lam.update_function_code(FunctionName=name, **code)
        lam.get_waiter("function_updated_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        version = lam.publish_version(FunctionName=name)["Version"]
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion=version)
        answer = lam.invoke(FunctionName=name, Qualifier="live", Payload=json.dumps(event))
        if json.loads(answer["Payload"].read()).get("statusCode") != 200:
            raise SystemExit(f"careful loop: {name} is not healthy")
    sample_s = time.monotonic() - started
    return {"sample_s": sample_s, "scaled_s": sample_s / args.sample * args.tenants}


def _plain_loop(args, stack: Stack, prefix: str) -> dict:
    """``aws lambda update-function-code`` per tenant, one after another, no wait."""
    clients = _lambda_clients(args)
    code = _code(NEW)
    time.sleep(6)  # the careful loop's last updates are over: nothing conflicts
    stack.model("POST", latency_s=0.1, update_s=5, limit=15)
    started = time.monotonic()
    for i in range(args.tenants):
        lam = clients[i % len(clients)]
        lam.update_function_code(FunctionName=f"opsconsole-{prefix}{i:05d}", **code)
    wall_s = time.monotonic() - started
    return {"wall_s": wall_s, "model": stack.model()}


# --- the report --------------------------------------------------------------------------


def _measured(args, settings, result: dict) -> dict:
    """The rollout's figures, printed as soon as it is over."""
    from deployments import fleet_model
    from deployments.models import Deployment
    from deployments.rollouts import Strategy

    rollout = result["rollout"]
    deployments = list(Deployment.objects.filter(rollout=rollout).select_related("tenant"))
    ends = [d.finished_at for d in deployments if d.finished_at]
    wall_s = (max(ends) - rollout.created_at).total_seconds() if ends else result["polled_s"]
    model = result["model"]
    calls = sum(model["control"].values())
    throttled = sum(model["throttled"].values())
    n = args.tenants
    per_tenant = calls / n
    chain = fleet_model.Chain(poll_s=settings.DEPLOY_UPDATE_POLL_S, config_update=per_tenant > 2.5)
    lone = fleet_model.estimate(waves=[1], rate=1e9, burst=1e9, max_parallel=1, chain=chain).chain_s
    rate = settings.LAMBDA_CONTROL_RATE
    waves = list(rollout.wave_sizes)
    # No tool does better: each wave (they run in order) takes the calls of its busiest
    # account at that account's budget, or one tenant's own chain of waits, whichever is
    # longer; bakes on top.
    busiest = [
        max(
            Counter(d.tenant.aws_account_id for d in deployments if d.wave == w).values(),
            default=0,
        )
        for w in range(len(waves))
    ]
    bound_s = sum(max(size * per_tenant / rate, lone) for size in busiest)
    bound_s += args.bake_s * (len(waves) - 1)
    estimate_s = float(result["preview"]["estimate_s"])
    counts = Counter(d.status for d in deployments)
    from opsconsole.jobs.models import StepRun

    # Each run is a job_run task taken by a worker: the waits give the worker back.
    step_runs = StepRun.objects.filter(step__job__in=[d.job_id for d in deployments if d.job_id])
    runs = Counter(step_runs.values_list("outcome", flat=True))
    failed = [d.reason for d in deployments if d.status == "failed"][:3]
    cpu = result["cpu_s"]
    default = Strategy.default()
    print(
        f"settings: rate={rate:g}/s burst={settings.LAMBDA_CONTROL_BURST:g} per account "
        f"max_parallel={rollout.max_parallel} (default_max_parallel()={default.max_parallel}) "
        f"waves={waves} bake_s={rollout.bake_s} (product default "
        f"{settings.ROLLOUT_DEFAULT_BAKE_S}: shortened to keep the run short) "
        f"poll_s={settings.DEPLOY_UPDATE_POLL_S} watch_s={settings.DEPLOY_WATCH_S} "
        f"workers={args.workers}x{args.concurrency} prefork (make run: 1x4) "
        f"accounts={args.accounts}"
    )
    print(
        f"rollout #{rollout.pk} status={rollout.status} deployments={dict(counts)} "
        f"first failures={failed} (polled {result['polled_s']:.1f} s)"
    )
    print(
        f"Lambda model: control-plane calls={calls} ({per_tenant:.2f}/tenant) "
        f"throttled={throttled} updates={model['updates']} conflicts={model['conflicts']} "
        f"by account={model['control']} calls by operation={dict(sorted(model['calls'].items()))}"
    )
    print(
        f"step runs: {sum(runs.values())} ({sum(runs.values()) / n:.1f}/tenant) by outcome "
        f"{dict(runs)}"
    )
    print(
        f"wall {wall_s:.1f} s; bound: per wave max(busiest account's calls at {rate:g}/s, one "
        f"chain alone {lone:.1f} s) = {bound_s:.1f} s; all calls at Lambda's 15/s limit "
        f"in one account: {calls / 15:.1f} s; preview estimate {estimate_s:.0f} s"
    )
    rss = result["rss_mb"]
    idle_s = result["idle_per_s"] * result["polled_s"]
    print(
        f"CPU during the rollout: console {cpu['console']:.1f} s (workers, beat, gunicorn; "
        f"idle they spend {result['idle_per_s'] * 1000:.0f} ms/s, {idle_s:.1f} s of it), "
        f"PostgreSQL {cpu['pg']:.1f} s (pids {result['servers']['pg']}; its backends "
        f"serving this bench, sampled: {cpu['pg_own']:.1f} s), Redis "
        f"{cpu['redis']:.1f} s (pids {result['servers']['redis']}); both servers are "
        f"shared with whatever else uses them meanwhile; the local AWS (not the console: "
        f"AWS's side) {cpu['aws']:.1f} s; worker processes peak RSS MB: "
        f"{', '.join(f'{v:.0f}' for v in rss)}",
        flush=True,
    )
    return {
        "wall_s": wall_s,
        "bound_s": bound_s,
        "estimate_s": estimate_s,
        "calls": calls,
        "throttled": throttled,
        "rate": rate,
        "burst": settings.LAMBDA_CONTROL_BURST,
        "max_parallel": rollout.max_parallel,
        "waves": len(waves),
        "bake_s": rollout.bake_s,
        "status": rollout.status,
        "cpu": cpu,
        "rss_max": max(rss) if rss else 0.0,
        "idle_s": idle_s,
        "rollout_id": rollout.pk,
    }


GOAL_ROLLBACK_RATIO = 1.1  # a fleet roll back within 1.1x of its calls at the budget


def _summary(args, m: dict, careful: dict, plain: dict, back: dict) -> None:
    n = args.tenants
    wall_s = m["wall_s"]
    print(
        f"careful loop: {args.sample} tenants in {careful['sample_s']:.1f} s, scaled to {n}: "
        f"{careful['scaled_s']:.0f} s; plain loop: {n} updates in {plain['wall_s']:.1f} s "
        f"(throttled {sum(plain['model']['throttled'].values())})"
    )
    ratio_to_bound = wall_s / m["bound_s"]
    speedup = careful["scaled_s"] / wall_s
    ratio_to_plain = wall_s / plain["wall_s"]
    console_ms = m["cpu"]["console"] * 1000 / n
    rollback_ratio = back["wall_s"] / max(back["budget_s"], 1e-9)
    busy_ms = (m["cpu"]["console"] - m["idle_s"]) * 1000 / n
    print(
        f"bench rollout: tenants={n} accounts={args.accounts} wall_s={wall_s:.1f} "
        f"bound_s={m['bound_s']:.1f} ratio_to_bound={ratio_to_bound:.2f} "
        f"ratio_to_bound_goal_ratio={ratio_to_bound / GOAL_RATIO_TO_BOUND:.2f} "
        f"estimate_s={m['estimate_s']:.0f} ratio_to_estimate={wall_s / m['estimate_s']:.2f} "
        f"calls={m['calls']} throttled={m['throttled']} "
        f"careful_s_scaled={careful['scaled_s']:.0f} sample={args.sample} "
        f"speedup_vs_careful={speedup:.1f} "
        f"speedup_goal_ratio={GOAL_SPEEDUP_VS_CAREFUL / speedup:.2f} "
        f"plain_s={plain['wall_s']:.1f} ratio_to_plain={ratio_to_plain:.2f} "
        f"ratio_to_plain_goal_ratio={ratio_to_plain / GOAL_RATIO_TO_PLAIN:.2f} "
        f"console_cpu_ms_per_tenant={console_ms:.1f} "
        f"cpu_goal_ratio={console_ms / GOAL_CPU_MS:.2f} "
        f"console_cpu_ms_per_tenant_above_idle={busy_ms:.1f} "
        f"pg_cpu_ms_per_tenant={m['cpu']['pg'] * 1000 / n:.1f} "
        f"pg_own_backends_cpu_ms_per_tenant={m['cpu']['pg_own'] * 1000 / n:.1f} "
        f"redis_cpu_ms_per_tenant={m['cpu']['redis'] * 1000 / n:.1f} "
        f"worker_peak_rss_mb={m['rss_max']:.0f} "
        f"rate={m['rate']:g} burst={m['burst']:g} max_parallel={m['max_parallel']} "
        f"waves={m['waves']} bake_s={m['bake_s']} status={m['status']} "
        f"rollback_wall_s={back['wall_s']:.1f} rollback_calls={back['calls']} "
        f"rollback_budget_s={back['budget_s']:.1f} "
        f"rollback_ratio_to_budget={rollback_ratio:.2f} "
        f"rollback_goal_ratio={rollback_ratio / GOAL_ROLLBACK_RATIO:.2f} "
        f"rollback_redeployed={back['fallbacks']} rollback_status={back['status']}"
    )


def _cleanup(prefix: str, run: str) -> None:
    from deployments.models import Rollout
    from opsconsole.awsaccounts.models import AwsAccount
    from opsconsole.jobs.models import Job
    from tenants import naming
    from tenants.models import Tenant
    from tests.tenants.conftest import drop_tenant_databases

    Rollout.objects.filter(deployments__tenant__slug__startswith=prefix).distinct().delete()
    Job.objects.filter(subject_type="tenant", subject_id__startswith=prefix).delete()
    Tenant.objects.filter(slug__startswith=prefix).delete()
    AwsAccount.objects.filter(name__startswith=f"brl{run}-").delete()
    drop_tenant_databases(naming.db_name(prefix))


if __name__ == "__main__":
    main()
