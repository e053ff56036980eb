"""Which files --reload watches, under the default and custom include/exclude globs."""

from __future__ import annotations

from pathlib import Path

import pytest

from squall.config import Config
from squall.supervisors.filefilter import FileFilter


def default_filter(root: Path) -> FileFilter:
    config = Config("app:app", reload=True, reload_dirs=[str(root)], log_config=None)
    return FileFilter(config.reload_dirs, config.reload_includes, config.reload_excludes)


@pytest.mark.parametrize(
    ("relative", "watched"),
    [
        ("app.py", True),
        ("package/module.py", True),
        ("app.pyc", False),
        ("__pycache__/app.cpython-311.pyc", False),
        (".app.py.swp", False),
        ("app.py~", False),
        (".hidden.py", False),
        (".git/hooks/pre-commit.py", False),  # inside a hidden directory
        (".venv/lib/site.py", False),
        ("templates/index.html", False),
        ("README.md", False),
    ],
)
def test_default_globs(tmp_path: Path, relative: str, watched: bool) -> None:
    assert default_filter(tmp_path).watches(tmp_path.resolve() / relative) is watched


def test_custom_globs_by_name_by_path_and_by_directory(tmp_path: Path) -> None:
    (tmp_path / "generated").mkdir()
    file_filter = FileFilter(
        [tmp_path],
        includes=["*.py", "templates/*.html"],
        excludes=["test_*.py", str(tmp_path / "generated")],
    )
    root = tmp_path.resolve()
    assert file_filter.watches(root / "app.py")
    assert file_filter.watches(root / "templates" / "index.html")
    assert not file_filter.watches(root / "static" / "index.html")
    assert not file_filter.watches(root / "test_app.py")
    assert not file_filter.watches(root / "generated" / "models.py")
    assert not file_filter.descends(root / "generated")
    assert file_filter.descends(root / "templates")
