"""The HTTP side every remote channel shares: one session, pacing, and errors sorted by what they mean.

A failed request is exactly one of:
* `NotDelivered` (a `TransientError`): the provider answered 429 / 5xx (or a retryable 409), or the
  connection was never made: safe to send again; `retry_after` from the `Retry-After` header, else the
  body's `retry_after` (Telegram `parameters.retry_after`, Discord `retry_after`, in seconds).
* `Unacknowledged` (a `TransientError`): the request may have reached the provider (read timeout,
  connection dropped after sending, a 2xx body we cannot read): what happens next is the channel's policy.
* `Rejected`: a definitive 4xx (bad token, bad chat, validation error): not retried in this run.

Every message is built here without the URL (tokens live in URL paths) and passed through the channel's
own `Redactor` and the global one, and raised `from None`, so no traceback carries a token.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from apex_rotation.exec.alerts.model import AlertError
from apex_rotation.log import Redactor, redact
from apex_rotation.retry import TransientError, parse_retry_after

_MAX_DETAIL = 200


class NotDelivered(TransientError):
    """The provider did not take the message (429, 5xx, no connection): send it again."""


class Unacknowledged(TransientError):
    """The request may have been delivered but its acknowledgement was lost."""


class Rejected(AlertError):
    """The provider refused the message for good (4xx other than 429/409)."""


def _body_retry_after(body: Any) -> float | None:
    if not isinstance(body, dict):
        return None
    value = body.get("retry_after", (body.get("parameters") or {}).get("retry_after"))
    try:
        return None if value is None else max(0.0, float(value))
    except (TypeError, ValueError):
        return None


def _never_connected(exc: requests.ConnectionError) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)


class Http:
    """A session for one channel: masks its secrets in every error, paces its requests."""

    def __init__(
        self,
        channel: str,
        secrets: Iterable[str],
        timeout_s: float,
        min_interval_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        retryable_statuses: tuple[int, ...] = (),
    ):
        self.channel = channel
        self.mask = Redactor(secrets)
        self.timeout_s = timeout_s
        self.min_interval_s = min_interval_s
        self.sleep = sleep
        self.retryable_statuses = retryable_statuses
        self.session = requests.Session()
        self._next_at = 0.0

    def clean(self, text: str) -> str:
        return redact(self.mask(text))

    def _pace(self) -> None:
        wait = self._next_at - time.monotonic()
        if wait > 0:
            self.sleep(wait)

    def post(self, url: str, what: str, **kwargs: Any) -> Any:
        """POST and return the JSON body of a 2xx answer; otherwise raise one of the three errors."""
        self._pace()
        label = f"{self.channel} {what}"
        try:
            resp = self.session.post(url, timeout=self.timeout_s, **kwargs)
        except requests.ConnectionError as exc:
            error = NotDelivered if _never_connected(exc) else Unacknowledged
            raise error(self.clean(f"{label}: {type(exc).__name__} ({_short(exc)})")) from None
        except requests.Timeout as exc:  # ReadTimeout: sent, no answer in time
            raise Unacknowledged(
                self.clean(f"{label}: {type(exc).__name__} after {self.timeout_s:g}s")
            ) from None
        except requests.RequestException as exc:
            raise Unacknowledged(self.clean(f"{label}: {type(exc).__name__} ({_short(exc)})")) from None
        finally:
            self._next_at = time.monotonic() + self.min_interval_s
        self.after_response(resp)
        try:
            body = resp.json() if resp.content else None
        except ValueError:
            body = None
        status = resp.status_code
        if 200 <= status < 300:
            if body is None and resp.content:
                raise Unacknowledged(self.clean(f"{label}: HTTP {status} with an unreadable body"))
            return body
        detail = self.clean(_short(body if body is not None else resp.text))
        message = f"{label}: HTTP {status}: {detail}"
        if status == 429:
            wait = parse_retry_after(resp.headers)
            raise NotDelivered(message, retry_after=wait if wait is not None else _body_retry_after(body))
        if status >= 500 or status in self.retryable_statuses:
            raise NotDelivered(message, retry_after=parse_retry_after(resp.headers))
        raise Rejected(message)

    def after_response(self, resp: requests.Response) -> None:
        """Respect a provider's rate-limit headers (Discord: no requests left → wait the reset)."""
        remaining = resp.headers.get("X-RateLimit-Remaining")
        reset_after = resp.headers.get("X-RateLimit-Reset-After")
        if remaining == "0" and reset_after:
            with contextlib.suppress(ValueError):
                self._next_at = max(self._next_at, time.monotonic() + min(float(reset_after), 60.0))


def _short(value: object) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "…"
