"""Lumiku Local: the Avatar Creator as one local program."""

__version__ = "0.1.0"
