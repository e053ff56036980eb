"""How each request's app is run: in an asyncio Task of its own, never below the parser.

From Python 3.12 the task starts eagerly (asyncio's own eager tasks): an
app that answers without waiting runs to its end inside the
`data_received` that brought its request, once that input is parsed, and
costs no loop turn.  A request started later (the second of two pipelined
ones, once the first is answered) starts eagerly from the callback the
end of the first schedules, outside any parse.  A loop
with a task factory of its own, set by the app at startup, gets every
request's task from it.  In every case the app runs in a real Task (anyio
works), with no wire layer below it, and a finished task is not kept.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from h1_support import RawClient, get_request, post_request
from support import factory_tasks, probe_app, wait_until

EAGER = sys.version_info >= (3, 12)


def test_each_request_runs_in_a_task_started_once_its_input_is_parsed(serve: Any) -> None:
    with serve(probe_app) as server, RawClient.connect(server.port) as client:
        seen = [json.loads(client.request(get_request(f"/{n}")).body) for n in range(3)]
        # The head and its body in one packet: the body is read before the app starts.
        seen.append(json.loads(client.request(post_request("/upload", b"x" * 4096)).body))
        # Two pipelined requests: the second starts once the first is answered.
        client.send(get_request("/a") + get_request("/b"))
        seen += [json.loads(client.read_response().body) for _ in range(2)]
        seen.append(json.loads(client.request(get_request("/anyio")).body))
        # No task is kept once its app has returned.
        wait_until(lambda: not server.server.server_state.tasks, what="the server to let go of finished tasks")
    assert all(each["task"] for each in seen), seen
    assert not any(each["under_parser"] for each in seen), seen
    assert [each["eager"] for each in seen] == [EAGER] * 7, seen
    assert seen[3]["body"] == 4096
    assert seen[-1]["thread"] == 7


def test_a_task_factory_set_by_the_app_makes_every_request_task(serve: Any) -> None:
    factory_tasks.clear()
    with serve(probe_app, lifespan="on") as server, RawClient.connect(server.port) as client:
        seen = [json.loads(client.request(get_request(f"/{n}")).body) for n in range(3)]
        wait_until(lambda: not server.server.server_state.tasks, what="the server to let go of finished tasks")
    assert [each["eager"] for each in seen] == [False] * 3, seen
    assert all(each["task"] and not each["under_parser"] for each in seen), seen
    request_tasks = [name for name in factory_tasks if name == "ASGIStream.run"]
    assert len(request_tasks) == 3, factory_tasks
