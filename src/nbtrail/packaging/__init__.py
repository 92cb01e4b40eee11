"""Packaging a logged model as a container build context (and image) that serves it."""

from ._api import Package, package
from ._build import BuildError, Image

__all__ = ["BuildError", "Image", "Package", "package"]
