"""Client limits over a hand-driven clock."""

from __future__ import annotations

import pytest

from comfy_bridge.exceptions import RateLimited
from comfy_bridge.limits import (
    ClientLimits,
    ClientLimitSettings,
    SlidingWindow,
    TokenBucket,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limits(clock: Clock, **settings: float) -> ClientLimits:
    return ClientLimits(
        ClientLimitSettings(**settings),  # type: ignore[arg-type]
        exempt=frozenset({"admin"}),
        clock=clock,
    )


def test_a_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate_per_s=0.5, capacity=2, now=0)

    assert bucket.take(0) == 0 and bucket.take(0) == 0
    assert bucket.take(0) == pytest.approx(2.0)
    assert bucket.take(1) == pytest.approx(1.0)
    assert bucket.take(2) == 0


def test_a_window_forgets_what_is_older_than_it() -> None:
    window = SlidingWindow(window_s=10)
    window.add(0, 60)
    window.add(5, 30)

    assert window.used(9) == 90
    assert window.wait_for(9, room=20, limit=100) == pytest.approx(1.0)
    assert window.wait_for(9, room=80, limit=100) == pytest.approx(6.0)
    assert window.used(10) == 30
    assert window.wait_for(10, room=70, limit=100) == 0


def test_submissions_over_the_rate_are_refused_until_a_token_comes() -> None:
    clock = Clock()
    client = limits(clock, jobs_per_minute=6, jobs_burst=2)
    client.admit_job("key:a", queued=0)
    client.admit_job("key:a", queued=0)

    with pytest.raises(RateLimited) as refused:
        client.admit_job("key:a", queued=0)

    assert refused.value.status_code == 429
    assert refused.value.retry_after_s == pytest.approx(10.0)
    assert refused.value.extra["limit"] == "jobs_per_minute"
    client.admit_job("key:b", queued=0)
    clock.now += 10
    client.admit_job("key:a", queued=0)


def test_a_full_queue_refuses_and_the_admin_is_never_limited() -> None:
    client = limits(Clock(), queued_jobs=3, jobs_per_minute=1, jobs_burst=1)

    with pytest.raises(RateLimited) as refused:
        client.admit_job("key:a", queued=3)

    assert refused.value.extra["limit"] == "queued_jobs"
    assert refused.value.retry_after_s > 0
    for _ in range(5):
        client.admit_job("admin", queued=100)
    client.admit_job(None, queued=100)


def test_running_jobs_past_the_limit_wait() -> None:
    client = limits(Clock(), running_jobs=2)

    assert client.may_start("key:a", running=1)
    assert not client.may_start("key:a", running=2)
    assert client.may_start("admin", running=50)
    assert limits(Clock()).may_start("key:a", running=1000)


def test_upload_bytes_an_hour() -> None:
    clock = Clock()
    client = limits(clock, upload_bytes_per_hour=1000)
    client.admit_upload("key:a", 600)
    client.record_upload("key:a", 600)
    clock.now += 60

    with pytest.raises(RateLimited) as refused:
        client.admit_upload("key:a", 600)

    assert refused.value.extra["limit"] == "upload_bytes_per_hour"
    assert refused.value.retry_after_s == pytest.approx(3540.0)
    client.admit_upload("key:a", 400)
    client.admit_upload("key:b", 1000)
    clock.now += 3540
    client.admit_upload("key:a", 1000)
