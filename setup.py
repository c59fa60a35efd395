"""Builds the optional C scanner (`tap_fullstory._columns`); everything else is in pyproject.toml.

Optional: without a C compiler the tap installs and runs the same, on its pure-Python paths
(the Parquet day batches are then about 2.5 times slower).
"""

from glob import glob

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "tap_fullstory._columns", ["tap_fullstory/csrc/columns.c"],
    depends=glob("tap_fullstory/csrc/*.h"),
    extra_compile_args=["-O3", "-std=c11", "-Wall"], optional=True)])
