"""The two ways a setting is refused."""


class SettingsError(ValueError):
    """A setting is missing or invalid, or settings contradict each other; the message names
    every setting involved."""


class Invalid(ValueError):
    """What is wrong with one value, as the rest of a sentence that starts with the setting's
    name ("must be an integer, got 'lots'"); the loader makes it a SettingsError naming it."""
