"""Settings and the retry policy check every value and name the field that is wrong."""

from __future__ import annotations

import math

import pytest

from batchcopy import RetryPolicy, Settings, SettingsError


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": math.inf}, "rate"),
        ({"max_rate": math.nan}, "max_rate"),
        ({"rate": 8, "max_rate": 2}, "max_rate"),
        ({"burst": 0}, "burst"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"read_timeout": 0}, "read_timeout"),
        ({"read_timeout": math.nan}, "read_timeout"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"wait_timeout": math.nan}, "wait_timeout"),
        ({"wait_read_rate": 0}, "wait_read_rate"),
        ({"rate_state_max_age": 0}, "rate_state_max_age"),
        ({"endpoint_url": "ftp://x"}, "endpoint_url"),
    ],
)
def test_settings_refuse_values_that_make_no_sense(values: dict[str, object], field: str) -> None:
    """Zero, negative, NaN and infinite numbers, and a --max-rate below --rate, are refused;
    the error names the field as the API spells it."""
    with pytest.raises(SettingsError) as caught:
        Settings(**values)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field} ")


def test_max_rate_below_rate_is_refused_and_equal_is_fine() -> None:
    """The cap is a promise: a starting rate above it is an error, not silently raised."""
    with pytest.raises(SettingsError, match=r"max_rate 2 is below rate 8"):
        Settings(rate=8, max_rate=2)
    assert Settings(rate=2, max_rate=2).rate == 2


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"deadline": math.nan}, "deadline"),
        ({"deadline": math.inf}, "deadline"),
        ({"base_delay": -1}, "base_delay"),
        ({"base_delay": 2, "max_delay": 1}, "max_delay"),
    ],
)
def test_retry_policy_names_the_field(values: dict[str, float], field: str) -> None:
    """RetryPolicy's errors name the field too: max_attempts, not a CLI option."""
    with pytest.raises(SettingsError) as caught:
        RetryPolicy(**values)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field} ")


def test_an_endpoint_scheme_in_capitals_is_a_scheme() -> None:
    """HTTP:// and HTTPS:// are the schemes they are in any case (URLs ignore case there)."""
    assert Settings(endpoint_url="HTTP://127.0.0.1:8099").endpoint_url == "HTTP://127.0.0.1:8099"
    assert Settings(endpoint_url="Https://lightsail.example")


def test_spaces_around_an_endpoint_are_said_as_such() -> None:
    """A pasted URL with a trailing space is refused for the space, not as a bad port."""
    with pytest.raises(SettingsError, match="has spaces around it"):
        Settings(endpoint_url="http://127.0.0.1:8099 ")
