"""Builds Squall's optional compiled hot path (src/squall/_speedups.c).

Everything else is declared in pyproject.toml.  The extension is optional:
without a working C compiler the build says so and installs the pure-Python
package, which behaves identically.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Skips the extension, with a warning, when it cannot be compiled."""

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


setup(
    ext_modules=[Extension("squall._speedups", ["src/squall/_speedups.c"], optional=True)],
    cmdclass={"build_ext": OptionalBuildExt},
)
