"""The version of lkmetrics (one place; the package and setuptools read it here)."""

__version__ = "0.1.0"
