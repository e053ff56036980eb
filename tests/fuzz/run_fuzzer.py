"""Run one fuzz harness under atheris (coverage-guided, libFuzzer): `make fuzz` calls this.

    python tests/fuzz/run_fuzzer.py HARNESS [libFuzzer arguments: corpus directories, -max_total_time=60 ...]

HARNESS is one of fuzz_targets.HARNESSES (http1, websocket, http2).  The
protocol code is loaded first (one input through the harness), then all of
it — Squall, the parsers, the standard library — is instrumented, so that
libFuzzer sees which branches each input reaches.  An input that breaks an
invariant is a crash: libFuzzer writes it under -artifact_prefix (make fuzz
points that at tests/fuzz/crashes/HARNESS/, whose files `make test` replays).
"""

from __future__ import annotations

import sys

import atheris

from fuzz_targets import HARNESSES


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in HARNESSES:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(HARNESSES)}}} [libFuzzer arguments]")
    check = HARNESSES[sys.argv[1]]
    check(b"")  # import and load everything the harness reaches before instrumenting
    atheris.instrument_all()
    atheris.Setup([sys.argv[0], *sys.argv[2:]], check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
