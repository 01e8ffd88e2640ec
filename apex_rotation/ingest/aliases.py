"""Per-venue ticker aliases: which venue ticker holds a basket symbol's bars over which time span."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from apex_rotation.config import AliasSpan


def ticker_segments(
    spans: Sequence[AliasSpan], since: pd.Timestamp, until: pd.Timestamp
) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    """Split [since, until] into (ticker, start, end) pieces; a span's `until` is exclusive.

    A request outside every span yields no piece: the symbol did not trade under any known ticker then.
    """
    pieces = []
    for span in spans:
        lo = max(since, pd.Timestamp(span.since)) if span.since else since
        hi = min(until, pd.Timestamp(span.until) - pd.Timedelta(1, "ns")) if span.until else until
        if lo <= hi:
            pieces.append((span.ticker, lo, hi))
    return pieces
