"""tap-fullstory: a Singer tap for FullStory's raw event exports."""

from importlib.metadata import version

#: The distribution's name (PyPI's `tap-fullstory` is another project); the executable and the
#: import package keep the short name.
DISTRIBUTION = "tap-fullstory-exports"
#: One source of truth, pyproject.toml's `version`, as installed (`tap-fullstory --version`).
__version__ = version(DISTRIBUTION)
