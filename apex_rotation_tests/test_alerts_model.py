"""The Alert payload and its status rules (exec/alerts/model.py), on hand-made bars."""

from __future__ import annotations

import pandas as pd
import pytest

from apex_rotation import schemas
from apex_rotation.exec.alerts import Alert, alert_status, build_alert
from apex_rotation.exec.alerts.stage import alerts_frame
from apex_rotation.signals.score import signal_id
from apex_rotation_tests.alert_fixtures import signal

T0 = pd.Timestamp("2025-12-30 12:00", tz="UTC")
# long SOL 4h at 100, ATR 4: zone [98, 100], entry 99, stop 94, target 108, invalidation 95.2


def bars(*hlc: tuple[float, float, float]) -> pd.DataFrame:
    index = pd.date_range(T0 + pd.Timedelta("4h"), periods=len(hlc), freq="4h", name="open_time")
    frame = pd.DataFrame(hlc, columns=["high", "low", "close"], index=index)
    return frame.assign(open=frame["close"], volume=1.0)


def status(*hlc, direction="long", expiry=6):
    s = signal(direction=direction)
    return alert_status(s, bars(*hlc), expiry)


@pytest.mark.parametrize(
    ("hlc", "expected", "bar"),
    [
        ([], "Waiting for retest", None),
        ([(104, 101, 103)], "Waiting for retest", None),
        ([(104, 101, 103), (103, 99.5, 101)], "Entry zone", 1),
        ([(104, 99, 103), (109, 102, 108)], "Target hit", 1),
        ([(104, 99, 103), (104, 93, 96)], "Invalidated", 1),  # stop traded through after the fill
        ([(104, 93.5, 96)], "Invalidated", 0),  # fill and stop on the same bar: stop first
        ([(104, 101, 103), (101, 95, 95.1)], "Invalidated", 1),  # closed below the invalidation
        ([(109, 101, 108)], "Expired", 0),  # ran to target without a retest
        ([(104, 101, 103)] * 6, "Expired", 5),  # no retest within 6 bars
        ([(110, 99, 100)], "Entry zone", 0),  # the target on the fill bar does not count
    ],
)
def test_long_status_rules(hlc, expected, bar):
    got = status(*hlc)
    assert got.status == expected
    frame = bars(*hlc)
    assert got.time == (None if bar is None else frame.index[bar])


def test_short_mirrors_long():
    # short at 100, ATR 4: zone [100, 102], stop 106, target 92, invalidation 104.8
    assert status((99, 97, 98), direction="short").status == "Waiting for retest"
    assert status((100.5, 97, 98), direction="short").status == "Entry zone"
    assert status((100.5, 97, 98), (99, 91, 92), direction="short").status == "Target hit"
    assert status((100.5, 97, 98), (107, 99, 105), direction="short").status == "Invalidated"
    assert status((99, 91, 92), direction="short").status == "Expired"


def test_payload_fields():
    s = signal()
    alert = build_alert(s, bars((104, 99, 103)), expiry_bars=6, chart="charts/4h/x.html")
    assert alert.alert_id == signal_id("SOL", "4h", T0, "rotation") == s.signal_id
    assert alert.top_reasons == [r.text() for r in s.top_reasons(3)]
    assert alert.top_reasons[0].startswith("rotation/strength pass +3.0")
    assert len(alert.reasons) == 5
    assert (alert.entry_low, alert.entry_high, alert.rr) == (98.0, 100.0, s.plan.rr)
    assert (alert.invalidation, alert.invalidation_kind) == (95.2, "TDST")
    assert alert.status == "Entry zone" and alert.as_of == bars((104, 99, 103)).index[-1]
    assert Alert.model_validate_json(alert.model_dump_json()) == alert


def test_telegram_html_is_escaped_and_carries_the_alert_id():
    alert = build_alert(signal(), bars(), expiry_bars=6)
    text = alert.telegram_html()
    assert "&lt;HIGH&gt; &amp; beta" in text and "<HIGH>" not in text
    assert text.endswith(f"<code>alert {alert.alert_id}</code>")
    assert f"alert {alert.alert_id}" in alert.plain_text()


def test_alerts_table_schema_accepts_rows_and_rejects_bad_ones():
    alerts = [
        build_alert(signal(bar_time=T0 + i * pd.Timedelta("4h")), bars(), expiry_bars=6) for i in range(3)
    ]
    frame = alerts_frame(alerts)
    schemas.validate_frame(schemas.alerts_schema(), frame, "alerts")
    with pytest.raises(schemas.SchemaViolation):
        schemas.validate_frame(schemas.alerts_schema(), frame.assign(status="Pending"), "alerts")
    with pytest.raises(schemas.SchemaViolation):
        schemas.validate_frame(schemas.alerts_schema(), pd.concat([frame, frame.iloc[:1]]), "alerts")
