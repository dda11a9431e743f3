"""Why personal data could not be read. No message carries a clear value or a key."""

from __future__ import annotations


class PersonalDataError(Exception):
    """Personal data could not be encrypted or decrypted."""


class PersonalDataShredded(PersonalDataError):
    """The owner's data key was destroyed (the account was deleted): the value is gone for good."""


class UnknownKey(PersonalDataError):
    """The token names a key that is not configured (a master key) or not held (a data key)."""


class UnreadableToken(PersonalDataError):
    """The token is malformed, was altered, or belongs to another owner or field."""
