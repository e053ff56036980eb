"""Both HTTP/1.1 parsers, fed the same bytes, must behave identically.

Identical means the same bytes written back (statuses, bodies, error
responses), the same requests handed to the app with the same fields and
body bytes, and the same end of the connection.  Any difference is a
request-smuggling risk behind a proxy that reads the bytes the other way.
The inputs are valid requests mutated byte by byte (seeded, reproducible),
and valid requests cut into reads at every offset.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mutations import VALID_INPUTS, mutated_inputs
from wire_harness import HTTP_IMPLS, Driver, HarnessFailure, Outcome, check_h1, split_at

MUTATION_SEED = 20240516
MUTATED = 3000


@pytest.fixture(scope="module")
def drivers() -> Iterator[dict[str, Driver]]:
    made = {impl: Driver("h1", impl) for impl in HTTP_IMPLS}
    yield made
    for driver in made.values():
        driver.close()


def outcomes(drivers: dict[str, Driver], reads: list[bytes]) -> dict[str, Outcome]:
    results = {}
    for impl, driver in drivers.items():
        outcome = driver.run(reads)
        check_h1(outcome)
        results[impl] = outcome
    return results


def test_mutated_requests_get_the_same_outcome(drivers: dict[str, Driver]) -> None:
    failures = []
    refused = served = 0
    for data, cuts in mutated_inputs(MUTATION_SEED, MUTATED):
        try:
            results = outcomes(drivers, split_at(data, cuts))
        except HarnessFailure as exc:
            failures.append(f"{data!r} cut at {cuts}: {exc}")
            continue
        first, second = results.values()
        if first != second:
            failures.append(f"{data!r} cut at {cuts}:\n  h11: {first.summary()}\n  httptools: {second.summary()}")
        elif any(status >= 400 for status in first.statuses):
            refused += 1
        else:
            served += 1
    assert not failures, f"{len(failures)} of {MUTATED} inputs:\n" + "\n".join(failures[:5])
    # The mutations must exercise both sides of the rules, or this test proves little.
    assert refused > MUTATED // 5 and served > MUTATED // 10, (refused, served)


@pytest.mark.parametrize("index", range(len(VALID_INPUTS)))
def test_valid_requests_read_alike_however_they_arrive(drivers: dict[str, Driver], index: int) -> None:
    """Cut into two reads at each offset, or one byte per read: the same outcome as in one read."""
    data = VALID_INPUTS[index]
    whole = outcomes(drivers, [data])
    assert whole["h11"] == whole["httptools"]
    assert whole["h11"].requests and all(request.complete for request in whole["h11"].requests)
    for cut in range(1, len(data)):
        for impl, outcome in outcomes(drivers, [data[:cut], data[cut:]]).items():
            assert outcome == whole[impl], f"{impl}, cut at {cut}: {outcome.summary()}"
    for impl, outcome in outcomes(drivers, [bytes([byte]) for byte in data]).items():
        assert outcome == whole[impl], f"{impl}, one byte per read: {outcome.summary()}"
