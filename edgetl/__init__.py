"""edgetl: from a folder of labelled photos to a fast image classifier on a Raspberry Pi camera."""

__version__ = "0.2.0"
