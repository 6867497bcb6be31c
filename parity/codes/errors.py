"""The errors of reading a digit image: one family, so a caller catches one type."""

from __future__ import annotations


class NoDigit(ValueError):
    """The input holds no usable digit (blank, too small, only noise, unreadable); the message says why."""


class UnreadableImage(NoDigit):
    """The file could not be read as an image at all (missing, not a regular file, not an image, truncated,
    too large to decode safely), as opposed to an image read that holds no digit."""
