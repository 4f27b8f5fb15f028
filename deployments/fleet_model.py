"""How long a rollout takes: a simulation of the orchestrator, the deploy chain and the
Lambda budget, shared by the preview (``rollout_estimate.estimate``) and ``bench/rollout.py``,
which prints it beside the time it measured.

Per deployment the chain is what ``pipeline.DEPLOY_STEPS`` does: a fixed overhead per step
(the job's dispatch and records), the calls (``call_s`` each), one token from the shared
bucket per control-plane call (``rate``/s, up to ``burst`` saved), the wait for Lambda to
finish the update (seen at the step's poll interval; the migrations run meanwhile), the
canary's wait, and the watch after the alias moved. The orchestrator keeps up to
``max_parallel`` deployments of a wave running, starts the next wave once a wave is done
and its bake is over. The simulation is event by event, so a budget that is the
bottleneck and a chain that is the bottleneck both come out as they happen.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Chain:
    """One deployment, as the pipeline runs it (seconds unless named otherwise)."""

    config_update: bool = False  # UpdateFunctionConfiguration first: one more call, a wait
    canary_s: float = 0.0  # the canary's bake on the alias (0: all at once)
    call_s: float = 0.1  # one AWS call's round trip
    update_s: float = 5.0  # Lambda's InProgress after an update
    poll_s: float = 5.0  # settings.DEPLOY_UPDATE_POLL_S
    schema_s: float = 0.3  # the migrations step (0.3: a small migration, measured)
    step_s: float = 0.05  # per step: the job's dispatch and its records
    steps: int = 7
    # A roll back that moves the alias back (alias_rollback.BACK_STEPS): its checks, the
    # health invoke and one UpdateAlias; the redeploy steps behind them pass at once.
    alias_back: bool = False

    @property
    def control_calls(self) -> int:
        if self.alias_back:
            return 1
        return 2 + int(self.config_update) + (1 if self.canary_s else 0)


@dataclass
class Estimate:
    wall_s: float  # the simulated rollout, start to the last deployment's end
    bound_s: float  # no tool can do better: per wave max(calls at the rate, one chain)
    calls: int  # control-plane calls in all
    rate_s: float  # calls / rate
    chain_s: float  # one deployment alone (no queue for tokens)
    waves_s: list[float] = field(default_factory=list)


class _Bucket:
    """The token bucket of ``opsconsole.aws.rate_budget`` (same refill, same burst)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, max(1.0, burst)
        self.tokens, self.at = self.burst, 0.0

    def take(self, now: float) -> float:
        """When a token asked for at ``now`` is granted (tokens booked in order)."""
        at = max(now, self.at)
        self.tokens = min(self.burst, self.tokens + (at - self.at) * self.rate)
        self.at = at
        if self.tokens >= 1:
            self.tokens -= 1
            return at
        wait = (1 - self.tokens) / self.rate
        self.at, self.tokens = at + wait, 0.0
        return at + wait


def _deploy(chain: Chain, watch_s: float):
    """One deployment as a generator: sent its start time, it yields ``("token", t)``
    when it asks for a token at ``t`` (and is sent the time it gets it), then
    ``("end", t)``. The scheduler grants tokens in the order they are asked for, as the
    shared bucket does."""
    t = yield
    if chain.alias_back:
        # back_check: GetFunction of the alias and of the version; back_health: Invoke.
        t += chain.step_s + 2 * chain.call_s + chain.step_s + chain.call_s
        t = (yield ("token", t + chain.step_s)) + chain.call_s  # UpdateAlias
        yield ("end", t + len(_REDEPLOY_STEPS) * chain.step_s)
        return
    t += chain.step_s  # artifact
    t += chain.step_s + 2 * chain.call_s  # code: GetFunction, the alias's version
    if chain.config_update:
        t = (yield ("token", t)) + chain.call_s
        t += math.ceil(chain.update_s / chain.poll_s) * chain.poll_s + 2 * chain.call_s
    t = (yield ("token", t)) + chain.call_s  # UpdateFunctionCode with Publish
    ready = t + chain.update_s
    t += chain.step_s + chain.schema_s
    t += chain.step_s + chain.call_s  # the version step's GetFunction
    if t < ready:  # it gives the worker back and looks again every poll
        t += math.ceil((ready - t) / chain.poll_s) * chain.poll_s + chain.call_s
    t += chain.step_s + chain.call_s  # health: Invoke of the version
    t = (yield ("token", t + chain.step_s)) + chain.call_s  # the alias (or canary weights)
    if chain.canary_s:
        t = (yield ("token", t + chain.canary_s)) + chain.call_s
    t += chain.step_s + chain.call_s + watch_s  # verify: alarms, then the watch
    yield ("end", t)


# The deploy steps an alias roll back carries for its fallback (each passes at once).
_REDEPLOY_STEPS = ("artifact", "code", "schema", "publish", "health", "traffic", "verify")


def _wave(
    start: float,
    size: int,
    slots: int,
    chain: Chain,
    bucket: _Bucket,
    watch_s: float,
    kick_s: float,
) -> float:
    """When a wave of ``size`` deployments started at ``start`` is done."""
    heap: list = []
    order = itertools.count()
    waiting = size

    def launch(at: float) -> None:
        gen = _deploy(chain, watch_s)
        next(gen)
        kind, t = gen.send(at)
        heapq.heappush(heap, (t, next(order), kind, gen))

    for _ in range(min(slots, size)):
        launch(start)
        waiting -= 1
    done = start
    while heap:
        t, _, kind, gen = heapq.heappop(heap)
        if kind == "token":
            kind, t2 = gen.send(bucket.take(t))
            heapq.heappush(heap, (t2, next(order), kind, gen))
            continue
        done = max(done, t)
        if waiting:  # the orchestrator fills the freed slot after its debounce
            launch(t + kick_s)
            waiting -= 1
    return done


def _alone(chain: Chain) -> float:
    return _wave(0.0, 1, 1, chain, _Bucket(1e9, 1e9), 0.0, 0.0)


def estimate(
    *,
    waves: list[int],
    calls_per_tenant: float | None = None,
    rate: float,
    burst: float,
    max_parallel: int,
    call_s: float = 0.1,
    chain_waits_s: float = 5.0,
    watch_s: list[float] | None = None,
    bake_s: list[float] | float = 0.0,
    chain: Chain | None = None,
    kick_s: float = 1.0,
) -> Estimate:
    """The rollout's wall time for ``waves`` (tenants per wave) at the budget.

    ``watch_s[w]`` is how long a deployment of wave ``w`` watches its tenant
    (``models.watch_seconds``), ``bake_s`` the bake after each wave (the part its
    deployments did not watch is the orchestrator's pause), ``kick_s`` the orchestrator's
    debounce between a deployment's end and the next start in its slot.
    ``calls_per_tenant`` above 2 means a configuration update too (the bench passes what
    it counted).
    """
    chain = chain or Chain(
        call_s=call_s,
        update_s=chain_waits_s,
        config_update=bool(calls_per_tenant and calls_per_tenant > 2.5),
    )
    watch = list(watch_s or [0.0] * len(waves))
    bakes = list(bake_s) if isinstance(bake_s, list) else [float(bake_s)] * len(waves)
    bucket = _Bucket(rate, burst)
    lone = _alone(chain)
    t, bound, spans = 0.0, 0.0, []
    for w, size in enumerate(waves):
        end = _wave(t, size, max(1, max_parallel), chain, bucket, watch[w], kick_s)
        spans.append(end - t)
        t = end
        bound += max(size * chain.control_calls / rate, lone + watch[w])
        if w < len(waves) - 1:
            pause = max(0.0, bakes[w] - watch[w])
            t += pause + kick_s
            bound += pause
    calls = sum(waves) * chain.control_calls
    return Estimate(
        wall_s=t,
        bound_s=bound,
        calls=calls,
        rate_s=calls / rate,
        chain_s=lone,
        waves_s=spans,
    )


def default_max_parallel(*, rate: float, chain: Chain | None = None) -> int:
    """The smallest ``max_parallel`` at which the budget, not the slots, is the limit.

    A deployment holds its slot for its whole chain, so ``rate / calls`` deployments
    start per second only if ``rate / calls * chain`` slots exist; half again as many
    absorbs the queue for tokens. (Workers are not held meanwhile: the waits give them
    back.)
    """
    chain = chain or Chain()
    lone = _alone(chain)
    return max(1, math.ceil(rate / chain.control_calls * lone * 1.5))
