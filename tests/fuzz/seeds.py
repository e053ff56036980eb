"""The seed corpus of the fuzz harnesses: valid inputs the fuzzer starts from.

    python tests/fuzz/seeds.py     # (re)writes tests/fuzz/corpus/<harness>/seed-*

Each file is one input as `fuzz_targets` reads it: a first byte giving how
it is cut into reads (0: one read), then the bytes.  The corpus is
committed; this script shows where it came from.
"""

from __future__ import annotations

from pathlib import Path

from hpack import Encoder

from mutations import VALID_INPUTS

CORPUS = Path(__file__).resolve().parent / "corpus"
ONE_READ = b"\x00"
SMALL_READS = b"\x82"  # reads of 3 bytes


def http1_seeds() -> dict[str, bytes]:
    seeds = {f"valid-{n}": ONE_READ + data for n, data in enumerate(VALID_INPUTS)}
    seeds.update({f"valid-{n}-split": SMALL_READS + data for n, data in enumerate(VALID_INPUTS[:4])})
    return seeds


def _ws_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = b"\x37\xfa\x21\x3d"
    masked = bytes(byte ^ mask[n % 4] for n, byte in enumerate(payload))
    if len(payload) < 126:
        length = bytes([0x80 | len(payload)])
    else:
        length = bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    return bytes([(0x80 if fin else 0) | opcode]) + length + mask + masked


def websocket_seeds() -> dict[str, bytes]:
    return {
        "text": ONE_READ + _ws_frame(0x1, b"hello"),
        "binary": ONE_READ + _ws_frame(0x2, bytes(range(200))),
        "fragmented": ONE_READ + _ws_frame(0x1, b"hel", fin=False) + _ws_frame(0x0, b"lo"),
        "ping-in-fragments": ONE_READ + _ws_frame(0x1, b"a", fin=False) + _ws_frame(0x9, b"p") + _ws_frame(0x0, b"b"),
        "close": ONE_READ + _ws_frame(0x8, b"\x03\xe8bye"),
        "text-split": SMALL_READS + _ws_frame(0x1, b"split across reads"),
    }


def _h2_frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream_id.to_bytes(4, "big") + payload


def http2_seeds() -> dict[str, bytes]:
    encoder = Encoder()
    get = encoder.encode([(":method", "GET"), (":scheme", "http"), (":path", "/a?b"), (":authority", "x")])
    post = encoder.encode(
        [(":method", "POST"), (":scheme", "http"), (":path", "/p"), (":authority", "x"), ("content-length", "5")]
    )
    settings = _h2_frame(0x4, 0, 0, b"\x00\x04\x00\x01\x00\x00")
    end_stream_headers, end_headers = 0x5, 0x4
    return {
        "get": ONE_READ + settings + _h2_frame(0x1, end_stream_headers, 1, get),
        "post": ONE_READ + settings + _h2_frame(0x1, end_headers, 1, post) + _h2_frame(0x0, 0x1, 1, b"hello"),
        "continuation": ONE_READ + settings + _h2_frame(0x1, 0x1, 1, get[:3]) + _h2_frame(0x9, end_headers, 1, get[3:]),
        "ping-window-priority": ONE_READ
        + settings
        + _h2_frame(0x6, 0, 0, b"12345678")
        + _h2_frame(0x8, 0, 0, b"\x00\x01\x00\x00")
        + _h2_frame(0x2, 0, 3, b"\x00\x00\x00\x01\x10"),
        "reset": ONE_READ + settings + _h2_frame(0x1, end_headers, 1, get) + _h2_frame(0x3, 0, 1, b"\x00\x00\x00\x08"),
        "goaway": ONE_READ + settings + _h2_frame(0x7, 0, 0, b"\x00\x00\x00\x00\x00\x00\x00\x00"),
        "get-split": SMALL_READS + settings + _h2_frame(0x1, end_stream_headers, 1, get),
    }


SEEDS = {"http1": http1_seeds, "websocket": websocket_seeds, "http2": http2_seeds}


def main() -> None:
    for harness, seeds in SEEDS.items():
        folder = CORPUS / harness
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for name, data in seeds().items():
            (folder / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    main()
