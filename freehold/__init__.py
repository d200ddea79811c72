"""Freehold: own your AI outright — run, tune, verify and serve open small models locally."""

__version__ = "0.1.0"
