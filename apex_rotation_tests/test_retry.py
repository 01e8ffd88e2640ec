"""call_with_retries: backoff waits, Retry-After, giving up, and its log lines (no network, no sleeps)."""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from apex_rotation.retry import (
    RetriesExhausted,
    TransientError,
    backoff_s,
    call_with_retries,
    describe_error,
    parse_retry_after,
)


class UpperRng:
    """Always draws the top of the jitter range, so waits are the backoff caps."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Flaky:
    """Fails with the given exceptions in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def run(fn, sleeps: list[float], max_retries: int = 4, rng=None, max_s: float = 3.0):
    return call_with_retries(
        fn,
        what="binance fetch_ohlcv symbol=BTC",
        max_retries=max_retries,
        base_s=0.5,
        max_s=max_s,
        retry_on=(TransientError,),
        sleep=sleeps.append,
        rng=rng or UpperRng(),
    )


def test_exponential_caps_then_success():
    sleeps: list[float] = []
    fn = Flaky(*(TransientError("503") for _ in range(4)))
    assert run(fn, sleeps) == "ok"
    assert fn.calls == 5
    # caps 0.5·2^k: 0.5, 1, 2, 4 -> the last one clipped to max_s = 3
    assert sleeps == [0.5, 1.0, 2.0, 3.0]


def test_full_jitter_is_uniform_from_zero_to_the_cap():
    assert backoff_s(3, 0.5, 30.0, UpperRng()) == 4.0
    draws = [backoff_s(2, 0.5, 30.0, random.Random(seed)) for seed in range(200)]
    assert all(0.0 <= d <= 2.0 for d in draws)
    assert min(draws) < 0.2 and max(draws) > 1.8  # spread over the whole range, not just near the cap
    assert backoff_s(2, 0.5, 30.0, random.Random(1)) == backoff_s(2, 0.5, 30.0, random.Random(1))


def test_retry_after_is_obeyed_instead_of_the_backoff():
    sleeps: list[float] = []
    fn = Flaky(TransientError("429", retry_after=2.5), TransientError("429"))
    assert run(fn, sleeps) == "ok"
    assert sleeps == [2.5, 1.0]  # the server's wait, then the backoff cap of retry 2


def test_retry_after_longer_than_max_gives_up_at_once():
    sleeps: list[float] = []
    fn = Flaky(TransientError("418 banned", retry_after=120))
    with pytest.raises(RetriesExhausted, match=r"symbol=BTC: server asks to wait 120s .* 418 banned"):
        run(fn, sleeps)
    assert fn.calls == 1 and sleeps == []


def test_gives_up_after_max_retries_naming_what_and_the_last_error():
    sleeps: list[float] = []
    last = TransientError("HTTP 502 bad gateway")
    fn = Flaky(TransientError("timeout"), TransientError("reset"), last)
    with pytest.raises(RetriesExhausted) as info:
        run(fn, sleeps, max_retries=2)
    assert str(info.value) == (
        "binance fetch_ohlcv symbol=BTC: gave up after 3 tries: TransientError: HTTP 502 bad gateway"
    )
    assert info.value.__cause__ is last
    assert fn.calls == 3 and sleeps == [0.5, 1.0]


def test_other_errors_are_not_retried():
    sleeps: list[float] = []
    fn = Flaky(ValueError("bad symbol"))
    with pytest.raises(ValueError, match="bad symbol"):
        run(fn, sleeps)
    assert fn.calls == 1 and sleeps == []


def test_zero_retries_means_one_try():
    sleeps: list[float] = []
    with pytest.raises(RetriesExhausted, match="gave up after 1 tries"):
        run(Flaky(TransientError("x")), sleeps, max_retries=0)
    assert sleeps == []


def test_parse_retry_after():
    assert parse_retry_after({"Retry-After": "120"}) == 120.0
    assert parse_retry_after({"retry-after": " 1.5 "}) == 1.5
    when = datetime(2024, 1, 1, 0, 0, 30, tzinfo=UTC)
    now = datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after({"Retry-After": format_datetime(when, usegmt=True)}, now=now) == 30.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({"Content-Type": "application/json"}) is None
    assert parse_retry_after(None) is None


def test_errors_are_described_without_query_strings():
    exc = RuntimeError(
        "binance GET https://api.binance.com/api/v3/klines?symbol=BTCUSDT&signature=s3cr3t 500 Oops"
    )
    assert describe_error(exc) == "RuntimeError: binance GET https://api.binance.com/api/v3/klines?… 500 Oops"
    assert describe_error(RuntimeError("x" * 1000)).endswith("x…")
    assert len(describe_error(RuntimeError("x" * 1000))) < 350


def test_each_retry_is_logged_as_key_values(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="apex_rotation.ingest.retry")
    fn = Flaky(TransientError("GET http://h/x?token=abc 429", retry_after=2))
    run(fn, [])
    [record] = caplog.records
    message = record.getMessage()
    assert message.startswith(
        "retry what=binance fetch_ohlcv symbol=BTC attempt=1/4 wait_s=2.000 retry_after=2 "
    )
    assert "token" not in message and "abc" not in message
