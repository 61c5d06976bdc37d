"""The Debian 12 base image that the fake multipass's `vm` backend boots (see README.md)."""

from __future__ import annotations

from .recipe import Image, cached_image, image_unavailable_reason

__all__ = ["Image", "cached_image", "image_unavailable_reason"]
