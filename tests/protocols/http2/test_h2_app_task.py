"""How each stream's app is run over HTTP/2 (see tests/protocols/http/test_http_app_task.py).

Every stream opened by one read of the socket is started once that input
is parsed, from Python 3.12 eagerly: each app runs in a real Task, never
with the frame layer below it on the stack, and a finished task is not kept.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from h2_client import H2Client, StreamResult, request_headers
from support import factory_tasks, probe_app, wait_until

EAGER = sys.version_info >= (3, 12)


def test_each_stream_runs_in_a_task_started_once_its_input_is_parsed(h2_serve: Any) -> None:
    with h2_serve(probe_app) as server, H2Client.connect(server.port) as client:
        results = [client.get(f"/{n}") for n in range(3)]
        results.append(client.get("/upload", method="POST", body=b"x" * 4096))
        # Three streams opened by one write: each starts once that input is parsed.
        opened = []
        for path in ("/a", "/b", "/c"):
            stream_id = client.conn.get_next_available_stream_id()
            client.streams[stream_id] = StreamResult(stream_id)
            fields = request_headers("GET", path, authority=client.authority, scheme=client.scheme)
            client.conn.send_headers(stream_id, fields, end_stream=True)
            opened.append(stream_id)
        client.flush()
        results += [client.response(stream_id) for stream_id in opened]
        results.append(client.get("/anyio"))
        wait_until(lambda: not server.server.server_state.tasks, what="the server to let go of finished tasks")
    seen = [json.loads(result.body) for result in results]
    assert all(result.status == 200 for result in results), results
    assert all(each["task"] for each in seen), seen
    assert not any(each["under_parser"] for each in seen), seen
    assert [each["eager"] for each in seen] == [EAGER] * len(seen), seen
    assert seen[3]["body"] == 4096
    assert seen[-1]["thread"] == 7


def test_the_upgraded_stream_runs_in_a_task_of_its_own(h2_serve: Any) -> None:
    with h2_serve(probe_app) as server, H2Client.connect(server.port, upgrade_path="/upgraded") as client:
        seen = json.loads(client.response(1).body)
        wait_until(lambda: not server.server.server_state.tasks, what="the server to let go of finished tasks")
    assert seen["task"] and not seen["under_parser"], seen


def test_a_task_factory_set_by_the_app_makes_every_stream_task(h2_serve: Any) -> None:
    factory_tasks.clear()
    with h2_serve(probe_app, lifespan="on") as server, H2Client.connect(server.port) as client:
        seen = [json.loads(client.get(f"/{n}").body) for n in range(3)]
        wait_until(lambda: not server.server.server_state.tasks, what="the server to let go of finished tasks")
    assert [each["eager"] for each in seen] == [False] * 3, seen
    request_tasks = [name for name in factory_tasks if name == "ASGIStream.run"]
    assert len(request_tasks) == 3, factory_tasks

