"""docs/options.md lists every setting of the command line, with its
environment variable and its config-file key, in one row."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from squall.cli import command, is_setting

PAGE = Path(__file__).parent.parent / "docs" / "options.md"
SETTINGS = [param for param in command.params if is_setting(param)]


def rows() -> dict[str, str]:
    """Each table row, by the file key in its fourth column."""
    found = {}
    for line in PAGE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if len(cells) == 5 and cells[3].startswith("`"):
            found[cells[3].strip("`")] = line
    return found


@pytest.mark.parametrize("param", SETTINGS, ids=[param.name or "" for param in SETTINGS])
def test_every_setting_has_its_row(param: click.Parameter) -> None:
    row = rows().get(param.name or "")
    assert row is not None, f"docs/options.md has no row for {param.name}"
    assert f"`SQUALL_{(param.name or '').upper()}`" in row
    for flag in param.opts + param.secondary_opts if isinstance(param, click.Option) else []:
        assert f"`{flag}`" in row


def test_no_row_for_a_setting_that_does_not_exist() -> None:
    assert set(rows()) == {param.name for param in SETTINGS}
