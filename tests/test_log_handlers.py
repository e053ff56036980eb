"""BatchedStreamHandler: the access log's lines of one loop turn in one write.

The lines themselves, through a real server, are checked by
test_access_log_format.py and test_logging.py; these check the batching.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading

from squall.log_handlers import BatchedStreamHandler


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def make_logger(stream: CountingStream) -> tuple[logging.Logger, BatchedStreamHandler]:
    logger = logging.Logger("batched-test")
    handler = BatchedStreamHandler(stream)
    logger.addHandler(handler)
    return logger, handler


def test_lines_of_one_loop_turn_are_written_together_after_it() -> None:
    stream = CountingStream()
    logger, _ = make_logger(stream)

    async def main() -> tuple[str, int]:
        for n in range(10):
            logger.info("line %d", n)
        during = stream.getvalue()
        await asyncio.sleep(0)  # the turn ends; the handler's callback runs
        await asyncio.sleep(0)
        return during, stream.writes

    during, writes = asyncio.run(main())
    assert during == ""
    assert writes == 1
    assert stream.getvalue() == "".join(f"line {n}\n" for n in range(10))


def test_a_full_batch_is_written_without_waiting_for_the_turn() -> None:
    stream = CountingStream()
    logger, handler = make_logger(stream)

    async def main() -> str:
        for n in range(handler.MAX_LINES):
            logger.info("%d", n)
        return stream.getvalue()

    written = asyncio.run(main())
    assert written.splitlines() == [str(n) for n in range(handler.MAX_LINES)]


def test_outside_an_event_loop_each_line_is_written_at_once() -> None:
    stream = CountingStream()
    logger, _ = make_logger(stream)
    logger.info("main thread")
    assert stream.getvalue() == "main thread\n"
    thread = threading.Thread(target=logger.info, args=("other thread",))
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert stream.getvalue() == "main thread\nother thread\n"


def test_flush_writes_what_waits() -> None:
    stream = CountingStream()
    logger, handler = make_logger(stream)

    async def main() -> str:
        logger.info("pending")
        handler.flush()
        return stream.getvalue()

    assert asyncio.run(main()) == "pending\n"
