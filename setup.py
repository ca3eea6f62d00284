"""Builds the one compiled module, ``spanline.spans.wire_spans`` (the span and score row builders).

Everything else is declared in pyproject.toml. The extension is optional: without a C
compiler the install still succeeds and the span model uses its pure-Python builder (slower,
same rows; ``spanline run writer`` logs which one it uses).
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = cythonize(
    [
        Extension(
            "spanline.spans.wire_spans",
            ["services/spanline/spans/wire_spans.pyx"],
            extra_compile_args=["-O2"],
        )
    ],
    compiler_directives={"language_level": 3},
)
for extension in extensions:
    extension.optional = True  # cythonize() does not carry this over from the Extension it is given

setup(ext_modules=extensions)
