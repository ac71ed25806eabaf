"""avspot: audio + video action spotting search platform."""

__version__ = "0.1.0"
