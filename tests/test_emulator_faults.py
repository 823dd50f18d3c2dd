"""Fault settings: parsing, validation, per-region overrides, token buckets, determinism."""

from __future__ import annotations

import re

import pytest

from batchcopy.emulator.faults import FaultConfig, RegionFaults, TokenBucket


def test_region_overrides_inherit_top_level_settings() -> None:
    """A region's settings start from the top-level ones and change only what they name."""
    config = FaultConfig.from_json(
        {"latency_ms": 20, "error_rate": 0.1, "regions": {"eu-west-1": {"copy_rate": 5}}}
    )
    eu = config.for_region("eu-west-1")
    assert (eu.latency_ms, eu.error_rate, eu.copy_rate) == (20, 0.1, 5)
    assert config.for_region("us-east-1").copy_rate is None
    assert FaultConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"eror_rate": 0.1}, "eror_rate: unknown setting"),
        ({"error_rate": 1.5}, "error_rate: a probability"),
        ({"latency_ms": -1}, "latency_ms: must not be negative"),
        ({"copy_rate": "fast"}, "copy_rate: expected a number"),
        ({"copy_rate": 0}, "copy_rate: must be above 0"),
        ({"throttle_status": 503}, "throttle_status: 400 or 429"),
        ({"regions": {"mars-1": {}}}, "regions.mars-1: not a Lightsail region"),
        ({"regions": {"eu-west-1": {"hang_rate": 2}}}, "regions.eu-west-1.hang_rate"),
        ({"seed": "x"}, "seed: expected an integer"),
        ([], "must be a JSON object"),
    ],
)
def test_bad_settings_name_the_key(data: object, words: str) -> None:
    """A wrong setting is refused with a message naming it."""
    with pytest.raises(ValueError, match=re.escape(words)):
        FaultConfig.from_json(data)


def test_token_bucket_refills_at_its_rate() -> None:
    """A bucket lets its burst through at once, then one request per 1/rate seconds."""
    now = [0.0]
    bucket = TokenBucket(rate=4, burst=2, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    now[0] += 0.25
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 10
    assert sum(bucket.take() for _ in range(10)) == 2  # never more than the burst


def test_same_seed_gives_same_faults_other_seed_differs() -> None:
    """Faults are drawn from a seeded generator per region: the same seed replays them."""

    def draws(seed: int, region: str) -> list[bool]:
        faults = RegionFaults(region, FaultConfig.from_json({"seed": seed}), clock=lambda: 0.0)
        return [faults.roll(0.5) for _ in range(64)]

    assert draws(7, "eu-west-1") == draws(7, "eu-west-1")
    assert draws(7, "eu-west-1") != draws(8, "eu-west-1")
    assert draws(7, "eu-west-1") != draws(7, "us-east-1")


def test_unlimited_region_always_admits_and_latency_has_jitter() -> None:
    """Without a rate every request passes; latency stays within latency_ms ± jitter."""
    config = FaultConfig.from_json({"latency_ms": 50, "latency_jitter_ms": 10})
    faults = RegionFaults("us-east-1", config, clock=lambda: 0.0)
    assert all(faults.admit(mutating=True) for _ in range(1000))
    delays = [faults.latency() for _ in range(200)]
    assert all(0.040 <= d <= 0.060 for d in delays)
    assert len(set(delays)) > 100
