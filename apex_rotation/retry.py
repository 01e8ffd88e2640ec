"""Retries with exponential backoff and full jitter, shared by every network client (sources, alert channels).

Why full jitter: many symbols refresh at once, and synchronised retries would hit a rate-limited API
together again. A server that says how long to wait (HTTP `Retry-After`) is obeyed instead, because
guessing shorter gets an IP banned on Binance. An exception carries that wait as a `retry_after`
attribute (seconds); the sources set it from the response headers (see `parse_retry_after`).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import TypeVar

from apex_rotation.config import DataSourcesConfig

T = TypeVar("T")
log = logging.getLogger(__name__)

_URL_QUERY = re.compile(r"(https?://[^\s?]+)\?\S*")
_MAX_ERROR_CHARS = 300
_DEFAULT_RNG = random.Random()


class TransientError(Exception):
    """A failure worth retrying (rate limit, 5xx, timeout, reset); `retry_after` in seconds when known."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RetriesExhausted(RuntimeError):
    """Retries ran out (or the server asked for a longer wait than allowed); the message says why."""


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date); None when absent/bad."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def describe_error(exc: BaseException) -> str:
    """`Type: message`, with URL query strings removed (they may hold tokens) and the length capped."""
    text = _URL_QUERY.sub(r"\1?…", str(exc)).replace("\n", " ")
    if len(text) > _MAX_ERROR_CHARS:
        text = text[:_MAX_ERROR_CHARS] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def backoff_s(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max_s, base_s * 2**attempt)] for retry number `attempt` (0-based)."""
    return rng.uniform(0.0, min(max_s, base_s * 2.0**attempt))


def backoff_policy(ds: DataSourcesConfig) -> dict[str, float | int]:
    """The configured retry budget, as keyword arguments of `call_with_retries`."""
    return {"max_retries": ds.max_retries, "base_s": ds.backoff_base_s, "max_s": ds.backoff_max_s}


def call_with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    max_retries: int,
    base_s: float,
    max_s: float,
    retry_on: tuple[type[BaseException], ...],
    give_up: type[Exception] = RetriesExhausted,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Call `fn` until it returns, retrying up to `max_retries` times on `retry_on` exceptions.

    The wait is the exception's `retry_after` when it has one, else a full-jitter backoff. A
    `retry_after` longer than `max_s` ends the retries at once: waiting less would be ignored by the
    server, and blocking a refresh for longer is the scheduler's call, not ours. Any other exception
    propagates untouched. Gives up by raising `give_up` (a caller's own error type, e.g. a source's
    `SourceError`) naming `what` and the last error.
    """
    rng = rng or _DEFAULT_RNG
    tries = max_retries + 1
    for attempt in range(tries):
        try:
            return fn()
        except retry_on as exc:
            error = describe_error(exc)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None and retry_after > max_s:
                raise give_up(
                    f"{what}: server asks to wait {retry_after:g}s (more than backoff_max_s={max_s:g}); "
                    f"giving up after {attempt + 1} tries: {error}"
                ) from exc
            if attempt + 1 >= tries:
                raise give_up(f"{what}: gave up after {tries} tries: {error}") from exc
            wait = float(retry_after) if retry_after is not None else backoff_s(attempt, base_s, max_s, rng)
            log.warning(
                "retry what=%s attempt=%d/%d wait_s=%.3f retry_after=%s error=%r",
                what,
                attempt + 1,
                max_retries,
                wait,
                "-" if retry_after is None else f"{retry_after:g}",
                error,
            )
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
