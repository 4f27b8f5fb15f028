"""The console's words of the trade, each explained in a sentence or two.

Pages show a term's explanation inline (``{% explain "ring" %}``, templatetags/glossary.py)
and /glossary/ lists them all. The texts describe what the console really does
(docs/rollouts.md, docs/onboarding.md, docs/health.md): when a behaviour changes there,
its sentence here changes with it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    slug: str
    name: str
    text: str


_TERMS = [
    Term(
        "tenant",
        "Tenant",
        "One customer, with a stack of its own on AWS: a PostgreSQL database, a Lambda "
        "function, an HTTP API in front of it, its database secret, logs and alarms.",
    ),
    Term(
        "isolation",
        "Isolation (database)",
        "Where a tenant's database lives: shared (a database of its own on the shared RDS "
        "instance), dedicated (an RDS instance of its own), serverless (an Aurora "
        "Serverless v2 cluster), or none (the app brings its own database).",
    ),
    Term(
        "ring",
        "Ring",
        "A number that orders tenants in a rollout. Ring 0 is for internal or canary "
        "tenants: they get a release first. A rollout can also target chosen rings. It is "
        "set on the tenant's Edit page.",
    ),
    Term(
        "release",
        "Release",
        "A version of the app: one artifact (a zip, an image or an image archive), its SQL "
        "migrations and its health check. A registered release never changes.",
    ),
    Term(
        "rollout",
        "Rollout",
        "Puts one release on many tenants, in waves, canary first, with a pause between "
        "waves. It can be paused, resumed, cancelled and rolled back.",
    ),
    Term(
        "wave",
        "Wave",
        "A group of tenants a rollout deploys together (up to its parallel limit). By "
        "default: the canary, then 10% of the tenants, then the rest. The next wave starts "
        "only when this one is done and its bake time has passed.",
    ),
    Term(
        "canary",
        "Canary",
        "The first wave of a rollout: the ring-0 tenants, or one tenant when no tenant is "
        "in ring 0. It meets the release first and is watched for the whole bake time; a "
        "failure there halts the rollout before any other tenant is touched.",
    ),
    Term(
        "bake-time",
        "Bake time",
        "How long a rollout waits after a wave, with the new release serving traffic, "
        "before the next wave starts (300 s by default). An alarm or a rising error rate "
        "in the canary's bake fails the deployment and moves its alias back.",
    ),
    Term(
        "canary-traffic",
        "Canary traffic",
        "A traffic mode: the alias 'live' first sends a share of the requests (N%) to the "
        "new version for M minutes, then all of them; an alarm in ALARM meanwhile aborts "
        "it.",
    ),
    Term(
        "halt",
        "Halted",
        "A rollout stops starting deployments by itself when too many fail: the first "
        "failure in the canary wave, or more than 10% of a later wave by default. Resume "
        "accepts the failures so far and goes on; Roll back undoes it.",
    ),
    Term(
        "rollback",
        "Roll back",
        "A rollout of its own that points the alias 'live' of each tenant the rollout "
        "updated back at the version it ran before (one Lambda call a tenant), or "
        "redeploys the previous release where that version is gone. SQL migrations are "
        "not undone: they must keep the previous release working (expand, then contract).",
    ),
    Term(
        "alias-live",
        "Alias 'live'",
        "The name the tenant's HTTP API calls its Lambda function by. A deployment "
        "publishes a new version, checks its health, then points 'live' at it; going back "
        "is pointing 'live' at the old version again.",
    ),
    Term(
        "health-check",
        "Health check before traffic",
        "Before the alias moves, the new version is sent the release's health request "
        "(GET /healthz by default) and its answer judged as API Gateway would; a failure "
        "stops the deployment while the old version still serves every request.",
    ),
    Term(
        "drift",
        "Drift",
        "A difference between what AWS has and the tenant's desired state: a setting "
        "someone changed by hand, a resource deleted. Check drift lists the differences "
        "and changes nothing.",
    ),
    Term(
        "repair",
        "Repair",
        "Runs the tenant's provisioning steps again as a reconcile job: what is missing is "
        "created again, what drifted is set back. On a tenant in good order it changes "
        "nothing.",
    ),
    Term(
        "reconcile",
        "Reconcile",
        "The job behind Repair and behind a configuration change: each step looks up its "
        "resources by name and tags, keeps what is right, creates what is missing and "
        "corrects what drifted.",
    ),
    Term(
        "job",
        "Job",
        "A piece of background work (onboarding, a deployment, a repair), saved with its "
        "steps before a worker starts it. A failed job keeps what it created; Retry resumes "
        "from the failed step.",
    ),
    Term(
        "what-it-saw",
        "What it saw",
        "What a finished step found or made in AWS: the names, identifiers and settings it "
        "recorded, so it can be checked without opening the AWS console.",
    ),
    Term(
        "health",
        "Health",
        "One verdict per tenant, the same on every page: down (suspended, failed, a "
        "resource it cannot serve without missing, or half its requests failing), degraded "
        "(5% failing, throttles, an alarm in ALARM, numbers unavailable) or healthy.",
    ),
    Term(
        "errors-1h",
        "Errors 1 h",
        "The share of the tenant's function invocations that failed in the last hour, "
        "from CloudWatch, with the counts (failed / all) beneath.",
    ),
    Term(
        "p95",
        "p95",
        "The 95th percentile of the function's duration over the last hour: 95 of 100 "
        "invocations finished within it, the slowest 5 took longer.",
    ),
    Term(
        "alarm",
        "Alarm",
        "A CloudWatch alarm the console creates for each tenant (errors, throttles, API "
        "5xx, database CPU and connections). An alarm in ALARM makes the tenant degraded "
        "and stops a deployment that is watching it.",
    ),
    Term(
        "suspend",
        "Suspend",
        "Sets the reserved concurrency of the tenant's function to 0: every request to its "
        "API fails until someone presses Resume. Nothing is deleted.",
    ),
    Term(
        "offboard",
        "Offboard",
        "Removes a customer's stack for good: a final snapshot or pg_dump first, then the "
        "function, API, alarms and role, then the database; secrets are scheduled for "
        "deletion. The tenant stays in the list, marked offboarded.",
    ),
    Term(
        "schema",
        "Schema version",
        "The newest of a release's SQL migrations applied to a tenant's database, as its "
        "own history table records it. Migrations run before traffic moves to new code.",
    ),
    Term(
        "scope",
        "Scope",
        "A user limited to some tenants (listed by name or matched by their tags) sees "
        "only those, on every page and in the API; any other tenant is 'not found' to them.",
    ),
    Term(
        "sandbox",
        "Sandbox",
        "A local AWS (built on moto) and a local PostgreSQL the console runs against "
        "without AWS credentials. Functions really run and metrics come from real "
        "requests; nothing touches a real AWS account.",
    ),
]

TERMS: dict[str, Term] = {term.slug: term for term in _TERMS}


def term_get(slug: str) -> Term:
    """The term, or a KeyError that names the known ones (a template typo fails loudly)."""
    try:
        return TERMS[slug]
    except KeyError:
        raise KeyError(f"No glossary term {slug!r}; known: {', '.join(sorted(TERMS))}") from None
