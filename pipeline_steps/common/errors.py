"""Exceptions with messages a physicist can act on (file, tree/branch/key, expected vs found)."""


class InputError(RuntimeError):
    """Bad input data: a missing/corrupt file, tree, branch, an empty tree, NaNs, bad indices."""


class ConfigError(ValueError):
    """A configuration value that passed the schema but cannot be used (e.g. unknown variable)."""
