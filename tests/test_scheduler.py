"""The placement policy and the bridge's queue, as pure functions of their state."""

from __future__ import annotations

import pytest

from comfy_bridge.scheduler import (
    BackendView,
    Capabilities,
    JobQueue,
    Placement,
    Policy,
    QueuedJob,
    RunTimes,
    remaining_s,
)
from comfy_bridge.workflows import Requirements

SD15 = ("checkpoints", "sd15.safetensors")
XL = ("checkpoints", "xl.safetensors")
LORA = ("loras", "detail.safetensors")
BASIC = frozenset({"CheckpointLoaderSimple", "KSampler", "SaveImage"})


def needs(*models: tuple[str, str], nodes: frozenset[str] = BASIC) -> Requirements:
    return Requirements(node_classes=nodes, models=frozenset(models))


def job(
    job_id: str,
    *models: tuple[str, str],
    workflow: str = "txt2img",
    client: str | None = None,
    priority: int = 0,
    queued_at_s: float = 0.0,
    nodes: frozenset[str] = BASIC,
) -> QueuedJob:
    return QueuedJob(
        job_id,
        workflow,
        needs(*(models or (SD15,)), nodes=nodes),
        client=client,
        priority=priority,
        queued_at_s=queued_at_s,
    )


def backend(
    backend_id: str,
    *,
    free_slots: int = 2,
    busy_s: float = 0.0,
    models: frozenset[tuple[str, str]] = frozenset({SD15, XL, LORA}),
    nodes: frozenset[str] = BASIC,
    checkpoint: str | None = None,
    in_flight: int = 0,
    degraded: bool = False,
) -> BackendView:
    capabilities = Capabilities(node_classes=nodes, models=models, known=True)
    return BackendView(
        backend_id,
        free_slots=free_slots,
        capabilities=capabilities,
        busy_s=busy_s,
        in_flight=in_flight,
        checkpoint=checkpoint,
        degraded=degraded,
    )


def placement(policy: Policy = Policy.OURS, **runs: float) -> Placement:
    """A placement whose run times of `txt2img` are known per backend id."""
    runtimes = RunTimes(prior_s=10.0)
    for backend_id, seconds in runs.items():
        runtimes.record("txt2img", backend_id, seconds)
    return Placement(runtimes, policy=policy, switch_s=5.0, wait_limit_s=60.0)


# ----------------------------------------------------------------------- queue


def test_queue_serves_higher_priority_first_then_in_order() -> None:
    queue = JobQueue()
    for job_id in ("a", "b"):
        queue.push(job(job_id))
    queue.push(job("urgent", priority=5))

    assert [j.job_id for j in queue.ordered()] == ["urgent", "a", "b"]
    assert queue.position("b") == 2
    assert queue.pop() == job("urgent", priority=5)


def test_a_burst_does_not_starve_another_client() -> None:
    queue = JobQueue()
    for n in range(100):
        queue.push(job(f"burst-{n}", client="burst"))
    queue.push(job("single", client="other"))

    assert queue.position("single") == 1


def test_clients_take_turns() -> None:
    queue = JobQueue()
    for n in range(3):
        queue.push(job(f"a{n}", client="a"))
    for n in range(3):
        queue.push(job(f"b{n}", client="b"))

    order = [j.job_id for j in queue.ordered()]

    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_a_retried_job_goes_back_to_the_head() -> None:
    queue = JobQueue()
    for n in range(5):
        queue.push(job(f"j{n}", client="a"))
    queue.push(job("retried", client="a"), again=True)

    assert queue.position("retried") in (0, 1)


def test_removed_jobs_leave_the_queue() -> None:
    queue = JobQueue()
    queue.push(job("a"))
    queue.push(job("b"))

    assert queue.remove("a") is not None
    assert queue.remove("a") is None
    assert "a" not in queue and "b" in queue
    assert len(queue) == 1
    assert queue.position("a") is None


# ------------------------------------------------------------------- run times


def test_run_times_are_a_moving_average() -> None:
    runtimes = RunTimes(prior_s=10.0, weight=0.5)
    runtimes.record("w", "b1", 4.0)
    runtimes.record("w", "b1", 8.0)

    assert runtimes.estimate("w", "b1") == pytest.approx(6.0)


def test_a_workflow_never_run_anywhere_gets_the_prior() -> None:
    assert RunTimes(prior_s=7.0).estimate("new", "b1") == 7.0


def test_an_unmeasured_pair_is_scaled_by_the_backends_slowness() -> None:
    runtimes = RunTimes(prior_s=10.0)
    # b-slow is four times slower than b-fast on the workflow both ran.
    runtimes.record("short", "b-fast", 1.0)
    runtimes.record("short", "b-slow", 4.0)
    runtimes.record("long", "b-fast", 5.0)

    estimate = runtimes.estimate("long", "b-slow")

    assert estimate == pytest.approx(20.0)
    assert runtimes.estimate("never", "b-slow") > runtimes.estimate("never", "b-fast")


def test_remaining_work_counts_down_with_the_clock() -> None:
    # Two jobs of 10 s bound at t=0 on a backend idle since t=0.
    bound = [(10.0, 0.0), (10.0, 0.0)]

    assert remaining_s(bound, 0.0, now=0.0) == pytest.approx(20.0)
    assert remaining_s(bound, 0.0, now=4.0) == pytest.approx(16.0)
    # Overrunning its estimate, the running job still counts for a little.
    assert remaining_s(bound, 0.0, now=30.0) == pytest.approx(11.0)
    assert remaining_s([], 0.0, now=5.0) == 0.0


# ----------------------------------------------------------------- eligibility


def test_a_job_goes_only_where_its_nodes_are() -> None:
    custom = BASIC | {"FancyNode"}
    plan = placement().plan(
        [job("j", nodes=custom)],
        [backend("b1"), backend("b2", nodes=custom)],
        now=0.0,
    )

    assert plan.bindings == [("j", "b2")]


def test_a_job_goes_only_where_its_models_are() -> None:
    plan = placement().plan(
        [job("j", SD15, LORA)],
        [backend("b1", models=frozenset({SD15})), backend("b2")],
        now=0.0,
    )

    assert plan.bindings == [("j", "b2")]


def test_missing_names_what_a_backend_lacks() -> None:
    capabilities = Capabilities(frozenset({"KSampler"}), frozenset({SD15}), True)

    missing = capabilities.missing(needs(SD15, LORA))

    assert missing.public() == {
        "node_classes": ["CheckpointLoaderSimple", "SaveImage"],
        "models": ["loras/detail.safetensors"],
    }


def test_a_job_only_down_backends_could_run_waits_then_is_stranded() -> None:
    policy = placement()
    queue = [job("j", LORA, queued_at_s=0.0)]
    up = [backend("b1", models=frozenset({SD15}))]

    assert policy.plan(queue, up, now=30.0).stranded == []
    plan = policy.plan(queue, up, now=61.0)
    assert plan.stranded == ["j"]
    assert plan.bindings == []


# -------------------------------------------------------------------- choosing


def test_an_idle_backend_takes_a_job_before_a_busy_one() -> None:
    plan = placement(b1=2.0, b2=2.0).plan(
        [job("j")], [backend("b1", busy_s=3.0), backend("b2")], now=0.0
    )

    assert plan.bindings == [("j", "b2")]


def test_a_degraded_backend_is_used_last() -> None:
    # Faster on paper, but it keeps failing jobs that succeed elsewhere.
    backends = [backend("liar", degraded=True), backend("sound", free_slots=1)]

    plan = placement(liar=1.0, sound=5.0).plan([job("a"), job("b")], backends, 0.0)

    assert plan.bindings == [("a", "sound"), ("b", "liar")]


def test_late_binding_waits_for_a_much_faster_backend() -> None:
    # The fast backend is full but frees in 1 s and runs the job in 1 s; the
    # slow one is idle but needs 20 s. The job waits for the fast one.
    plan = placement(fast=1.0, slow=20.0).plan(
        [job("j")],
        [backend("fast", free_slots=0, busy_s=1.0), backend("slow")],
        now=0.0,
    )

    assert plan.bindings == []


def test_a_long_queue_fills_slow_backends_too() -> None:
    queue = [job(f"j{n}") for n in range(40)]
    plan = placement(fast=1.0, slow=4.0).plan(
        queue, [backend("fast", free_slots=0, busy_s=1.0), backend("slow")], now=0.0
    )

    assert [backend_id for _, backend_id in plan.bindings] == ["slow", "slow"]
    # Not the first jobs: those finish sooner on the fast backend.
    assert "j0" not in dict(plan.bindings)


def test_the_loaded_checkpoint_wins_among_equals() -> None:
    queue = [job("sd", SD15), job("xl", XL)]
    backends = [backend("b1", checkpoint="xl.safetensors"), backend("b2")]

    plan = placement(b1=2.0, b2=2.0).plan(queue, backends, now=0.0)

    assert sorted(plan.bindings) == [("sd", "b2"), ("xl", "b1")]


def test_an_empty_backend_is_loaded_rather_than_another_evicted() -> None:
    plan = placement().plan(
        [job("xl", XL)],
        [backend("a", checkpoint="sd15.safetensors"), backend("b")],
        now=0.0,
    )

    assert plan.bindings == [("xl", "b")]


def test_priority_jobs_are_placed_first() -> None:
    queue = JobQueue()
    queue.push(job("normal"))
    queue.push(job("urgent", priority=1))

    plan = placement().plan(queue.ordered(), [backend("b1", free_slots=1)], now=0.0)

    assert plan.bindings == [("urgent", "b1")]


def test_no_slot_is_given_twice() -> None:
    queue = [job(f"j{n}") for n in range(10)]

    plan = placement().plan(
        queue, [backend("b1", free_slots=2), backend("b2", free_slots=1)], now=0.0
    )

    assert sorted(backend_id for _, backend_id in plan.bindings) == ["b1", "b1", "b2"]


# ------------------------------------------------------------------- baselines


def test_least_queue_binds_every_job_at_once() -> None:
    queue = [job(f"j{n}") for n in range(5)]
    backends = [backend("b1", free_slots=0, in_flight=2), backend("b2")]

    plan = placement(Policy.LEAST_QUEUE).plan(queue, backends, now=0.0)

    assigned = [backend_id for _, backend_id in plan.bindings]
    assert assigned == ["b2", "b2", "b1", "b2", "b1"]


def test_round_robin_takes_turns_across_plans() -> None:
    policy = placement(Policy.ROUND_ROBIN)
    backends = [backend("b1"), backend("b2"), backend("b3")]

    first = policy.plan([job("j0"), job("j1")], backends, now=0.0)
    second = policy.plan([job("j2"), job("j3")], backends, now=0.0)

    assigned = [b for _, b in first.bindings + second.bindings]
    assert assigned == ["b1", "b2", "b3", "b1"]
