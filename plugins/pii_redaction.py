"""PII redaction: mask personal data in what users type before it reaches the model.

Drop-in plugin (``plugins/pii_redaction.py``, plugin name ``pii_redaction``). On every
turn it rewrites, in place, the content of each ``user`` message of the request (system
and assistant messages are left alone). Because ``enclave_transform_messages`` runs
before the model call, the redacted text is also what is stored and logged.

Settings in ``tenant.toml``::

    [plugins.pii_redaction]
    redact = ["email", "phone", "iban"]   # optional; default: all kinds

Kinds and their placeholders:

``email``  -> ``[email]``   ``name@domain.tld``
``iban``   -> ``[iban]``    2 letters, 2 check digits, 11-30 letters/digits, grouped in
                            fours or not; the ISO 13616 mod-97 check must pass
``card``   -> ``[card]``    13-19 digits, unseparated or grouped with spaces or hyphens
                            as printed on cards (4-4-4-4, 4-4-4-4-3, 4-6-5), passing the
                            Luhn check
``phone``  -> ``[phone]``   7-15 digits in a phone shape: ``+`` international numbers
                            (``+44 20 7946 0958``, ``+1 (555) 123-4567``), ``(555) 123-4567``,
                            three or more groups with one separator (``555-123-4567``,
                            ``06 12 34 56 78``), ``555-1234``, ``020 79460958``, and bare runs
                            of 10-11 digits (``5551234567``)

Ordinary numbers are kept: years and year ranges (``2024``, ``2019-2024``), dates
(``2024-05-17``, ``17.05.2024``), amounts (``$1,500``, ``1.500.000``, ``€ 100 000``),
IPv4 addresses, short numbers and digit runs that fail the IBAN or Luhn check. Bare runs
of 7-9 or 12+ digits are not treated as phone numbers.

An unknown kind, or a ``redact`` that is not a list of strings, raises
:class:`enclave.errors.TenantInvalid`. ``redact(text, kinds)`` is the pure function behind
the hook, usable on its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from enclave import hookimpl
from enclave.errors import TenantInvalid

if TYPE_CHECKING:
    from enclave.identity import Principal
    from enclave.tenants import Tenant
    from enclave.turns import TurnRequest

PLUGIN_NAME = "pii_redaction"
KINDS = ("email", "phone", "iban", "card")
# Applied in this order: an email may contain digits, an IBAN contains a digit run that
# could look like a card or a phone, and a card number would also match the phone shapes.
_ORDER = ("email", "iban", "card", "phone")

EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}(?![\w-])")

IBAN_RE = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,4})?"
    r"(?![A-Za-z0-9])")

CARD_RE = re.compile(
    r"""
    (?<![\w.,+-])
    (?:
        \d{13,19}                                              # 4111111111111111
      | \d{4}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?          # 4111 1111 1111 1111
      | \d{4}([ -])\d{6}\2\d{4,5}                               # 3782 822463 10005
    )
    (?!\w|[.,-]\d)
    """, re.VERBOSE)

PHONE_RE = re.compile(
    r"""
    (?<![\w+$€£¥@])(?<!\d[.-])                        # not inside a word/number, no currency
    (?:
        \+\d{1,3}(?:[ .-]?(?:\(\d{1,5}\)|\d{1,5})){1,6}   # +44 20 7946 0958, +1 (555) 123-4567
      | \(\d{1,5}\)[ .-]?\d{1,5}(?:[ .-]\d{1,5}){0,4}     # (555) 123-4567
      | \d{1,5}([ .-])\d{1,8}(?:\1\d{1,5}){0,4}           # 555-123-4567, 06 12 34 56 78
      | \d{10,11}                                         # 5551234567
    )
    (?!\w|[.,-]\d)
    """, re.VERBOSE)

_DIGIT_RE = re.compile(r"\d")
_GROUPS_RE = re.compile(r"\d+")
_DATE_RE = re.compile(r"\d{4}([-./ ])\d{1,2}\1\d{1,2}|\d{1,2}([-./ ])\d{1,2}\2\d{4}")
_IPV4_RE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_CURRENCY_BEFORE_RE = re.compile(r"[$€£¥]\s?$|\b(?:USD|EUR|GBP|CHF|JPY)\s?$", re.IGNORECASE)
_CURRENCY_AFTER_RE = re.compile(
    r"^\s?(?:[$€£¥]|(?:USD|EUR|GBP|CHF|JPY|dollars?|euros?|pounds?)\b)", re.IGNORECASE)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    iban = candidate.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34 or not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _card_ok(candidate: str) -> bool:
    digits = "".join(_DIGIT_RE.findall(candidate))
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _phone_verdict(text: str, m: re.Match[str]) -> bool | None:
    """True: a phone. False: not one, and no phone starts inside it. None: not one here."""
    s = m.group()
    n_digits = len(_DIGIT_RE.findall(s))
    if n_digits > 15:
        return False  # a long number (failed card check, account id...): keep it whole
    if n_digits < 7:
        return None
    if s.startswith("+") or s.startswith("("):
        return True
    if (_CURRENCY_BEFORE_RE.search(text[max(0, m.start() - 5):m.start()])
            or _CURRENCY_AFTER_RE.search(text[m.end():m.end() + 9])):
        return None
    if s.isdigit():
        return True  # bare 10-11 digit run
    if _DATE_RE.fullmatch(s) or _IPV4_RE.fullmatch(s):
        return None
    groups = _GROUPS_RE.findall(s)
    sep = m.group(1)
    if sep == "." and any(not 2 <= len(g) <= 4 for g in groups):
        return None  # a version or a decimal: 10.0.19045; dotted phones group by 2-4
    if len(groups) == 2:
        # "555-1234" or a trunk-prefixed national number "020 79460958"; not "2019-2024"
        return (groups[0].startswith("0")
                or (sep in "-." and len(groups[0]) == 3 and len(groups[1]) == 4))
    first, rest = groups[0], groups[1:]
    if all(len(g) == 3 for g in rest) and (
            len(first) <= 2 or (sep in ".," and len(first) <= 3)):
        return None  # thousands grouping: 1 500 000, 12 345 678, 1.500.000
    return True


def _sub_phones(text: str) -> str:
    out: list[str] = []
    last = pos = 0
    while (m := PHONE_RE.search(text, pos)) is not None:
        verdict = _phone_verdict(text, m)
        if verdict:
            out += [text[last:m.start()], "[phone]"]
            last = pos = m.end()
        elif verdict is False:
            pos = m.end()
        else:  # a number that is not a phone may be followed by one: "in 2024 555-123-4567"
            pos = m.start() + 1
    out.append(text[last:])
    return "".join(out)


def _sub_checked(pattern: re.Pattern[str], check: Callable[[str], bool],
                 placeholder: str) -> Callable[[str], str]:
    def sub(text: str) -> str:
        return pattern.sub(lambda m: placeholder if check(m.group()) else m.group(), text)
    return sub


_REDACTORS: dict[str, Callable[[str], str]] = {
    "email": lambda text: EMAIL_RE.sub("[email]", text),
    "iban": _sub_checked(IBAN_RE, iban_ok, "[iban]"),
    "card": _sub_checked(CARD_RE, _card_ok, "[card]"),
    "phone": _sub_phones,
}


def redact(text: str, kinds: Iterable[str]) -> str:
    """Replace the PII of the given ``kinds`` in ``text`` by placeholders.

    ``kinds`` is any subset of ``KINDS``; an unknown kind raises ``ValueError``.
    """
    wanted = set(kinds)
    unknown = wanted - set(KINDS)
    if unknown:
        raise ValueError(f"unknown PII kind(s) {', '.join(sorted(unknown))}; "
                         f"allowed: {', '.join(KINDS)}")
    for kind in _ORDER:
        if kind in wanted:
            text = _REDACTORS[kind](text)
    return text


def _kinds(tenant: Tenant) -> tuple[str, ...]:
    cfg = tenant.plugin_settings(PLUGIN_NAME)
    where = f"{tenant.path / 'tenant.toml'}: field 'plugins.{PLUGIN_NAME}"
    unknown_keys = sorted(set(cfg) - {"redact"})
    if unknown_keys:
        raise TenantInvalid(f"{where}.{unknown_keys[0]}' of tenant '{tenant.slug}': unknown "
                            "setting; allowed settings: redact (and enabled)")
    kinds = cfg.get("redact", KINDS)
    if not isinstance(kinds, list | tuple) or not all(isinstance(k, str) for k in kinds):
        raise TenantInvalid(f"{where}.redact' of tenant '{tenant.slug}': must be a list of "
                            f"kinds among {', '.join(KINDS)}")
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise TenantInvalid(f"{where}.redact' of tenant '{tenant.slug}': unknown kind(s) "
                            f"{', '.join(map(repr, bad))}; allowed values: {', '.join(KINDS)}")
    return tuple(kinds)


@hookimpl
def enclave_validate_settings(tenant: Tenant) -> None:
    _kinds(tenant)


@hookimpl
def enclave_transform_messages(tenant: Tenant, principal: Principal,
                               request: TurnRequest) -> None:
    kinds = _kinds(tenant)
    for message in request.messages:
        if message.role == "user":
            cleaned = redact(message.content, kinds)
            if cleaned != message.content:
                message.content = cleaned
