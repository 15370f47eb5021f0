"""Errors a user can cause and fix, raised with a message that names the fix."""


class ConfigError(ValueError):
    """A bad option, config file, op parameter or model name."""
