"""visionbench: benchmark how images are sent to vision-language models."""

from importlib.metadata import PackageNotFoundError, version

from visionbench.hookspecs import hookimpl

try:
    __version__ = version("visionbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__", "hookimpl"]
