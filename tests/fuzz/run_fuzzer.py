"""Run one fuzz harness under atheris (coverage-guided, libFuzzer): `make fuzz` calls this.

    python tests/fuzz/run_fuzzer.py HARNESS [libFuzzer arguments: corpus directories, -max_total_time=60 ...]

HARNESS is one of fuzz_targets.HARNESSES (http1, websocket, http2).  The
harness is imported, and run once (which loads the implementations it
drives), with Squall and the protocol libraries instrumented — not the
standard library, whose event loop would only slow each run — so that
libFuzzer sees which of their branches each input reaches.  An input that breaks an
invariant is a crash: libFuzzer writes it under -artifact_prefix (make fuzz
points that at tests/fuzz/crashes/HARNESS/, whose files `make test` replays).
"""

from __future__ import annotations

import sys

import atheris

INSTRUMENTED = ["squall", "h11", "h2", "hpack", "hyperframe", "wsproto", "websockets"]


def main() -> None:
    with atheris.instrument_imports(include=INSTRUMENTED):
        from fuzz_targets import HARNESSES

        if len(sys.argv) < 2 or sys.argv[1] not in HARNESSES:
            sys.exit(f"usage: {sys.argv[0]} {{{','.join(HARNESSES)}}} [libFuzzer arguments]")
        check = HARNESSES[sys.argv[1]]
        check(b"")  # loads the implementations the harness drives, instrumented too
    atheris.Setup([sys.argv[0], *sys.argv[2:]], check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
