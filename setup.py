"""Builds Squall's optional compiled hot path.

Two parts, both optional: src/squall/_speedups.c (hand-written C: request
heads, response heads, WebSocket frames), and the request path's classes
(the stream, the connections, the reader, the request-head records, the
proxy-header rewriter), compiled by Cython from their own .py files with
the declarations of the .pxd files beside them.  The .py files are the
pure-Python path, used when a part could not be built or
SQUALL_NO_EXTENSIONS=1 (see squall/_compiled.py).

Everything else is declared in pyproject.toml.  Without a working C
compiler (or without Cython) the build says so and installs the
pure-Python package, which behaves identically.
"""

from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The modules Cython compiles: each .py with a .pxd beside it (squall/_compiled.py
# lists them too, for SQUALL_NO_EXTENSIONS=1; a test checks the two agree).
CYTHON_MODULES = sorted(
    str(pxd.relative_to("src").with_suffix("")).replace("/", ".") for pxd in Path("src/squall").rglob("*.pxd")
)


class OptionalBuildExt(build_ext):
    """Skips an extension, with a warning, when it cannot be compiled."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all: distutils raises before compiling
            self.warn(f"squall: not building the compiled hot path ({exc}); using pure Python")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self.warn(f"squall: could not compile {ext.name} ({exc}); using pure Python")


def compiled_classes() -> list[Extension]:
    """The Cython extensions; a module Cython cannot make is left out, with a warning."""
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        print(f"squall: not compiling the request path's classes ({exc}); using pure Python")
        return []
    extensions = []
    for name in CYTHON_MODULES:
        source = "src/" + name.replace(".", "/") + ".py"
        try:
            extensions += cythonize(
                [Extension(name, [source], optional=True)],
                build_dir="build/cython",
                # Annotations stay documentation: typed by them, a compiled function would
                # refuse what the Python one accepts (a bytearray where `bytes` is written).
                # No pickling support is generated for the classes (nothing pickles a
                # connection or a stream): less code mapped into every process.
                compiler_directives={"language_level": "3", "annotation_typing": False, "auto_pickle": False},
                quiet=True,
            )
        except Exception as exc:  # Cython refused the module
            print(f"squall: not compiling {name} ({exc}); using its pure-Python class")
    return extensions


setup(
    ext_modules=[Extension("squall._speedups", ["src/squall/_speedups.c"], optional=True), *compiled_classes()],
    cmdclass={"build_ext": OptionalBuildExt},
)
