"""What a person is identified by: identity documents, their numbers, and the masked forms shown back.

The rules of each ID type are here and nowhere else; so are the normal forms of mobiles, emails and
ID numbers, which the blind index (``infra.personal_data``) hashes, and the masks every response
uses. Pure functions: the clock comes in as ``today``.

Formats, and how sure they are:

- ``ID_CARD`` (居民身份证, GB 11643-1999): 17 digits and a check character (ISO 7064 MOD 11-2,
  ``X`` for 10); digits 7–14 are the birth date (YYYYMMDD, from 1900-01-01 to today); the first two
  digits are a province-level code of GB/T 2260 (11–15, 21–23, 31–37, 41–46, 50–54, 61–65, 71,
  81–83). The district digits (3–6) are not checked: codes are retired and reused, and an old card
  keeps its old code.
- ``HK_MACAO_TAIWAN_RESIDENCE_PERMIT`` (港澳台居民居住证, 2018): the ID-card format with region
  prefix 810000 (Hong Kong), 820000 (Macao) or 830000 (Taiwan).
- ``HK_MACAO_TRAVEL_PERMIT`` (港澳居民来往内地通行证): ``H`` (Hong Kong) or ``M`` (Macao) and 8 digits
  (card since 2013), or 10 digits (the older booklet). The check rule is not published: not checked.
- ``TAIWAN_TRAVEL_PERMIT`` (台湾居民来往大陆通行证): 8 digits (card since 2015), or 10 digits with
  an optional one- or two-letter issue suffix, with or without parentheses (the older booklet,
  e.g. ``1234567890(B)``). Permissive: no check digit is published.
- ``PASSPORT``: any nation's, so 5 to 20 letters and digits; nothing more is checkable.
- ``FOREIGN_PERMANENT_RESIDENCE_CARD`` (外国人永久居留身份证): the 2004 card's 15 characters — three
  letters (the nationality) and 12 digits, not checked further — or the 2023 card's 18 characters
  starting with 9, whose check character follows GB 11643 as the ID card's does. The inner fields of
  the new number (issuing province, nationality, birth date) are reported but not officially
  published, so only the length, the leading 9 and the check character are enforced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from aggregates.errors import InvalidCommand
from events.user import IdType

ID_NUMBER_INVALID = "ID_NUMBER_INVALID"
EARLIEST_BIRTH_DATE = date(1900, 1, 1)

# GB 11643-1999: weight of position i (0-based, of 17) is 2^(17-i) mod 11; the check is the
# character at (sum of weighted digits) mod 11.
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK_CHARACTERS = "10X98765432"
_PROVINCES = frozenset(
    [*range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47), *range(50, 55), *range(61, 66), 71, 81, 82, 83]
)
_RESIDENCE_PERMIT_REGIONS = ("810000", "820000", "830000")

_EIGHTEEN = re.compile(r"\d{17}[\dX]")
_HK_MACAO_TRAVEL_PERMIT = re.compile(r"[HM](\d{8}|\d{10})")
_TAIWAN_TRAVEL_PERMIT = re.compile(r"\d{8}|\d{10}(\([A-Z]{1,2}\)|[A-Z]{1,2})?")
_PASSPORT = re.compile(r"[A-Z0-9]{5,20}")
_OLD_PERMANENT_RESIDENCE_CARD = re.compile(r"[A-Z]{3}\d{12}")


@dataclass(frozen=True)
class IdentityDocument:
    """A validated document: its type and its number in normal form. The repr shows the mask only."""

    id_type: IdType
    number: str

    def __repr__(self) -> str:
        return f"IdentityDocument({self.id_type.value}, {mask_id_number(self.number)!r})"

    __str__ = __repr__


# --- normal forms ----------------------------------------------------------------------


def normalise_id_number(number: str) -> str:
    """Upper case, no whitespace: ``11010519491231002x`` and ``110105 19491231 002X`` are one number."""
    return "".join(number.split()).upper()


def normalise_mobile(mobile: str) -> str:
    """Digits only, without the +86 / 0086 country code: ``+86 138-0013-8000`` → ``13800138000``."""
    digits = "".join(c for c in mobile if c.isascii() and c.isdigit())
    if len(digits) == 15 and digits.startswith("0086"):
        return digits[4:]
    if len(digits) == 13 and digits.startswith("86"):
        return digits[2:]
    return digits


def normalise_email(email: str) -> str:
    """Trimmed and lower-cased (the whole address: providers here treat the local part case-blind)."""
    return email.strip().lower()


# --- validation ------------------------------------------------------------------------


def check_character(first_seventeen: str) -> str:
    """The GB 11643-1999 check character of 17 digits."""
    total = sum(int(d) * w for d, w in zip(first_seventeen, _WEIGHTS, strict=True))
    return _CHECK_CHARACTERS[total % 11]


def identity_document(id_type: IdType, number: str, *, today: date) -> IdentityDocument:
    """The document if ``number`` is valid for ``id_type``; else ``InvalidCommand`` ID_NUMBER_INVALID.

    The error's details name the type and the failed rule (``FORMAT``, ``CHECK_CHARACTER``,
    ``BIRTH_DATE``, ``REGION``), never the number.
    """
    normal = normalise_id_number(number)
    if id_type in (IdType.ID_CARD, IdType.HK_MACAO_TAIWAN_RESIDENCE_PERMIT):
        _check_citizen_number(id_type, normal, today)
    elif id_type is IdType.HK_MACAO_TRAVEL_PERMIT:
        _require(id_type, _HK_MACAO_TRAVEL_PERMIT.fullmatch(normal) is not None, "FORMAT")
    elif id_type is IdType.TAIWAN_TRAVEL_PERMIT:
        _require(id_type, _TAIWAN_TRAVEL_PERMIT.fullmatch(normal) is not None, "FORMAT")
    elif id_type is IdType.PASSPORT:
        _require(id_type, _PASSPORT.fullmatch(normal) is not None, "FORMAT")
    else:
        _check_permanent_residence_card(normal)
    return IdentityDocument(id_type, normal)


def _check_citizen_number(id_type: IdType, normal: str, today: date) -> None:
    _require(id_type, _EIGHTEEN.fullmatch(normal) is not None, "FORMAT")
    _require(id_type, check_character(normal[:17]) == normal[17], "CHECK_CHARACTER")
    if id_type is IdType.ID_CARD:
        _require(id_type, int(normal[:2]) in _PROVINCES, "REGION")
    else:
        _require(id_type, normal.startswith(_RESIDENCE_PERMIT_REGIONS), "REGION")
    _require(id_type, _plausible_birth_date(normal[6:14], today), "BIRTH_DATE")


def _check_permanent_residence_card(normal: str) -> None:
    id_type = IdType.FOREIGN_PERMANENT_RESIDENCE_CARD
    if len(normal) == 15:
        _require(id_type, _OLD_PERMANENT_RESIDENCE_CARD.fullmatch(normal) is not None, "FORMAT")
        return
    _require(id_type, _EIGHTEEN.fullmatch(normal) is not None and normal.startswith("9"), "FORMAT")
    _require(id_type, check_character(normal[:17]) == normal[17], "CHECK_CHARACTER")


def _plausible_birth_date(digits: str, today: date) -> bool:
    try:
        born = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return False
    return EARLIEST_BIRTH_DATE <= born <= today


def _require(id_type: IdType, holds: bool, rule: str) -> None:
    if not holds:
        raise InvalidCommand(
            f"not a valid {id_type.value} number ({rule})",
            code=ID_NUMBER_INVALID,
            details={"idType": id_type.value, "rule": rule},
        )


# --- masks -----------------------------------------------------------------------------
# Every response shows personal data through these, and only these.

MASK = "*"
_EMAIL_LOCAL_MASK = MASK * 3


def mask_name(name: str) -> str:
    """The first character and one ``*`` per remaining character (``张三`` → ``张*``,
    ``欧阳娜娜`` → ``欧***``); a one-character name is a single ``*``."""
    if len(name) <= 1:
        return MASK * len(name)
    return name[0] + MASK * (len(name) - 1)


def mask_mobile(mobile: str) -> str:
    """An 11-digit (or longer) number keeps its first 3 and last 4 digits (``138****0000``);
    a shorter one is all ``*``, since 7 clear digits would be most of it."""
    if len(mobile) < 11:
        return MASK * len(mobile)
    return mobile[:3] + MASK * (len(mobile) - 7) + mobile[-4:]


def mask_id_number(number: str) -> str:
    """The first 4 and last 4 characters (``1101**********002X``); a number shorter than 16 keeps
    a quarter of its length at each end instead, so at least half of it is always hidden."""
    shown = min(4, len(number) // 4)
    if shown == 0:
        return MASK * len(number)
    return number[:shown] + MASK * (len(number) - 2 * shown) + number[-shown:]


def mask_email(email: str) -> str:
    """The first character of the local part, ``***`` (whatever its length) and the domain
    (``a***@example.com``); a one-character local part shows none of it."""
    local, at, domain = email.rpartition("@")
    if not at:
        return _EMAIL_LOCAL_MASK
    shown = local[0] if len(local) > 1 else ""
    return f"{shown}{_EMAIL_LOCAL_MASK}@{domain}"
