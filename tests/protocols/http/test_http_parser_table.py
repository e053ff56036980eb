"""The table of accepted and refused inputs in docs/http.md, run against every --http and --loop.

The table is the specification: this test reads it from the page, so the
two cannot drift apart.  Each row's input is sent on a fresh connection,
followed by a request that closes the connection; the statuses of the
responses before that closing request must be the row's answers.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from h1_support import RawClient, read_body, respond

DOC = Path(__file__).resolve().parents[3] / "docs" / "http.md"
SECTION = "## What is accepted and refused"
NAMES = {
    "GET": b"GET / HTTP/1.1\r\nHost: x\r\n",
    "POST": b"POST / HTTP/1.1\r\nHost: x\r\n",
    "CHUNKED": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
}
CLOSER = b"GET /closer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def _evaluate(node: ast.AST) -> Any:
    """The value of a table input: bytes literals, the names above, + and *."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (bytes, int)):
        return node.value
    if isinstance(node, ast.Name) and node.id in NAMES:
        return NAMES[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
        left, right = _evaluate(node.left), _evaluate(node.right)
        return left + right if isinstance(node.op, ast.Add) else left * right
    raise ValueError(f"unexpected {ast.dump(node)} in a table input")


def table_rows() -> list[tuple[str, bytes, list[int]]]:
    text = DOC.read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.find("\n## ", len(SECTION))]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if len(cells) != 4 or not cells[1].startswith("`"):
            continue
        case, source, answers, _why = cells
        data = _evaluate(ast.parse(source.strip("`"), mode="eval"))
        rows.append((case, data, [int(status) for status in answers.split()]))
    return rows


ROWS = table_rows()


def test_the_table_is_complete() -> None:
    assert len(ROWS) >= 50, "docs/http.md's table was not found or lost rows"
    assert len({case for case, _, _ in ROWS}) == len(ROWS), "two rows share a case name"


async def path_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await read_body(receive)
    await respond(send, body=scope["path"].encode())


def answers_to(port: int, data: bytes) -> list[int]:
    """The statuses of the responses to `data` (sent with the closing request after it)."""
    statuses = []
    with RawClient.connect(port) as client:
        try:
            client.send(data + CLOSER)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before all was sent: the answer is still to read
        while True:
            response = client.read_response()
            if response.body == b"/closer":
                break
            statuses.append(response.status)
            if response.closes:
                break
        client.assert_closed()
    return statuses


def test_the_table(serve: Any) -> None:
    failures = []
    with serve(path_app) as server:
        for case, data, expected in ROWS:
            try:
                answers = answers_to(server.port, data)
            except Exception as exc:  # report every failing row, not just the first
                failures.append(f"{case}: {type(exc).__name__}: {exc}")
                continue
            if answers != expected:
                failures.append(f"{case}: answered {answers}, the table says {expected}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("status", [400, 431])
def test_an_error_answering_head_has_no_body(serve: Any, status: int) -> None:
    request = b"HEAD / HTTP/1.1\r\nHost: x\r\n" + (b"X: \x01\r\n" if status == 400 else b"X: y\r\n" * 101) + b"\r\n"
    with serve(path_app) as server, RawClient.connect(server.port) as client:
        client.send(request)
        response = client.read_response(method="HEAD")
        assert response.status == status and response.closes
        assert int(response.get("content-length") or 0) > 0
        client.assert_closed()  # nothing after the head: no body


def test_the_same_input_split_anywhere(serve: Any) -> None:
    """Cut into two reads at every offset, a chunked request with trailers is read alike."""
    data = NAMES["CHUNKED"] + b"5;a=b\r\nhello\r\n0\r\nX: y\r\n\r\n"
    with serve(path_app) as server, RawClient.connect(server.port) as client:
        for cut in range(1, len(data)):
            client.send(data[:cut])
            client.send(data[cut:])
            assert client.read_response().status == 200
