"""The `pushbutton` command: a Pushbutton portal's public API, from a CI job."""

__version__ = "0.1.0"
