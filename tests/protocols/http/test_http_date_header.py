"""The Date header follows the clock under load.

The server refreshes the Date header from its periodic tick.  It used to
refresh only when a tick fell within the first 0.1 s of a second: a busy
event loop that missed that window kept the previous second's Date for a
whole second more, or for ever while the loop stayed busy at every second
boundary.  Here the app holds the loop (a synchronous call, as a loaded
server's loop is busy) across each second boundary, and a client sends
requests back to back: every response's Date must be at most a fraction
of a second behind the time the request was sent.
"""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime
from typing import Any

from h1_support import RawClient, get_request, respond

RUN_SECONDS = 2.5
# How long before a second boundary a request makes the app hold the loop,
# and how far past the boundary it holds it.
HOLD_BEFORE = 0.2
HOLD_AFTER = 0.15
# How far behind the wall clock a Date may be when the response is built:
# the hold, the tick (0.1 s) and a generous margin for a loaded machine,
# well below the whole second a missed refresh costs.
LAG = 0.7


async def busy_at_boundaries(scope: dict[str, Any], receive: Any, send: Any) -> None:
    now = time.time()
    boundary = math.floor(now) + 1
    if boundary - now < HOLD_BEFORE:
        time.sleep(boundary + HOLD_AFTER - now)  # blocks the event loop across the boundary
    await respond(send, body=b"ok")


def test_date_header_advances_every_second_under_load(serve: Any) -> None:
    seen: list[tuple[float, int, float]] = []  # (sent, Date, received)
    with serve(busy_at_boundaries) as server:
        with RawClient.connect(server.port) as client:
            start = time.time()
            while time.time() - start < RUN_SECONDS:
                sent = time.time()
                response = client.request(get_request("/"))
                received = time.time()
                date = response.get("date")
                assert date is not None, "no Date header"
                seen.append((sent, int(parsedate_to_datetime(date).timestamp()), received))
    stale = [(sent, date) for sent, date, _ in seen if date < math.floor(sent - LAG)]
    future = [(received, date) for _, date, received in seen if date > received]
    assert not future, f"Date ahead of the clock: {future[:3]}"
    assert not stale, (
        f"{len(stale)} of {len(seen)} responses carried a Date more than {LAG}s behind the clock, "
        f"e.g. sent at {stale[0][0]:.2f} with Date {stale[0][1]}"
    )
    # Not trivially true: the run crossed two boundaries, with responses well after each.
    boundaries = {math.floor(sent - LAG) for sent, _, _ in seen if sent - math.floor(sent) >= LAG}
    assert len(boundaries) >= 2, f"the run checked too few seconds: {sorted(boundaries)}"
    assert len({date for _, date, _ in seen}) >= 3
