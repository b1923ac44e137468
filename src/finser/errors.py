"""The one exception finser raises for problems a user can act on."""


class FinserError(RuntimeError):
    """Says what was expected, what was found, and what to do."""
