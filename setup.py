"""Builds the optional C scanner (`tap_fullstory._columns`); everything else is in pyproject.toml.

Optional: without a C compiler the tap installs and runs the same, on its pure-Python paths.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "tap_fullstory._columns", ["tap_fullstory/_columns.c"],
    extra_compile_args=["-O3", "-std=c11", "-Wall"], optional=True)])
