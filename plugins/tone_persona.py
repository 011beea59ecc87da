"""Tone persona: give a tenant's assistant a house style.

Drop-in plugin (``plugins/tone_persona.py``, plugin name ``tone_persona``). It adds one
paragraph to the system prompt of every turn, for tenants that enable it in
``tenant.toml``::

    [plugins.tone_persona]
    persona = "cheerful"               # required: "cheerful", "formal" or "concise"
    signature = "— Acme Workspace"     # optional: a line every answer must end with

Personas:

``cheerful``
    Warm and upbeat; the assistant addresses the user by first name (taken from the
    signed-in user's display name, or the part of the email before the ``@``).
``formal``
    Professional register: no first names, slang, emoji or exclamation marks.
``concise``
    Answer first, as briefly as possible, no filler.

``signature`` must be a single line of text; when set, the assistant is told to end
every answer with it, on a line of its own.

A missing or unknown ``persona``, a ``signature`` that is not a one-line string, or any
other key in the table raises :class:`enclave.errors.TenantInvalid` naming the tenant,
the setting and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from enclave import hookimpl
from enclave.errors import TenantInvalid

if TYPE_CHECKING:
    from enclave.identity import Principal
    from enclave.tenants import Assistant, Tenant

PLUGIN_NAME = "tone_persona"
PERSONAS = ("cheerful", "formal", "concise")
SETTINGS = ("persona", "signature")


def _invalid(tenant: Tenant, setting: str, problem: str) -> TenantInvalid:
    return TenantInvalid(f"{tenant.path / 'tenant.toml'}: field 'plugins.{PLUGIN_NAME}."
                         f"{setting}' of tenant '{tenant.slug}': {problem}")


def _settings(tenant: Tenant) -> tuple[str, str | None]:
    cfg: Mapping[str, Any] = tenant.plugin_settings(PLUGIN_NAME)
    unknown = sorted(set(cfg) - set(SETTINGS))
    if unknown:
        raise _invalid(tenant, unknown[0], f"unknown setting; allowed settings: "
                                           f"{', '.join(SETTINGS)} (and enabled)")
    persona = cfg.get("persona")
    if persona not in PERSONAS:
        got = "is missing" if persona is None else f"unknown persona {persona!r}"
        raise _invalid(tenant, "persona", f"{got}; allowed values: {', '.join(PERSONAS)}")
    signature = cfg.get("signature")
    if signature is not None:
        if not isinstance(signature, str) or not signature.strip() or "\n" in signature.strip():
            raise _invalid(tenant, "signature", "must be a non-empty, single-line string")
        signature = signature.strip()
    return persona, signature


def first_name(principal: Principal) -> str:
    """The user's first name, from the display name (or the email's local part)."""
    name = (principal.name or "").strip() or principal.email.split("@")[0]
    name = name.split("@")[0]
    parts = name.split()
    if len(parts) == 1:  # "alice.smith" / "alice_smith" from an email local part
        parts = [p for p in re.split(r"[._]+", parts[0]) if p]
    first = parts[0] if parts else ""
    return first[:1].upper() + first[1:] if first.islower() else first


def persona_text(persona: str, name: str, signature: str | None) -> str:
    """The paragraph for ``persona``; ``name`` is only used by the cheerful persona."""
    if persona == "cheerful":
        who = f"the user by their first name, {name}," if name else "the user warmly"
        text = (f"Tone: cheerful. Be warm, upbeat and encouraging. Address {who} "
                "at the start of your answer, keep a friendly, positive voice and "
                "celebrate progress, while staying accurate and helpful.")
    elif persona == "formal":
        text = ("Tone: formal. Write in a courteous, professional register with complete "
                "sentences. Do not use first names, slang, emoji or exclamation marks, "
                "and avoid contractions.")
    elif persona == "concise":
        text = ("Tone: concise. Give the answer first and as briefly as possible: no "
                "greeting, no filler and no restating of the question. Prefer short "
                "sentences or a few bullet points, and add detail only when asked.")
    else:
        raise ValueError(f"unknown persona {persona!r}; allowed: {', '.join(PERSONAS)}")
    if signature:
        text += (" End every answer with the following line, exactly as written, on a "
                 f"line of its own: {signature}")
    return text


@hookimpl
def enclave_validate_settings(tenant: Tenant) -> None:
    _settings(tenant)


@hookimpl
def enclave_system_prompt(tenant: Tenant, principal: Principal,
                          assistant: Assistant) -> str | None:
    persona, signature = _settings(tenant)
    return persona_text(persona, first_name(principal), signature)
