"""Tenants: the typed schema of ``tenants/<slug>/`` and the registry that loads them.

A tenant folder holds ``tenant.toml``, ``prompts/system.md``, ``assistants/*.toml`` and
``branding/``. Anything invalid raises :class:`TenantInvalid` naming the file and the
field; nothing silently falls back.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from enclave.errors import TenantInvalid, TenantNotFound

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{2,31}$")
ROLES = ("member", "editor", "admin", "auditor")
Role = Literal["member", "editor", "admin", "auditor"]
HEX_COLOR = r"^#[0-9a-fA-F]{6}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Branding(_Strict):
    title: str = Field(min_length=1, max_length=80)
    tagline: str = ""
    logo: str | None = None
    primary_color: str = Field(default="#1c7ed6", pattern=HEX_COLOR)
    background_color: str = Field(default="#ffffff", pattern=HEX_COLOR)
    text_color: str = Field(default="#1f2328", pattern=HEX_COLOR)


class RoleAssignment(_Strict):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    roles: tuple[Role, ...] = Field(min_length=1)


class Identity(_Strict):
    provider: str = Field(pattern=r"^[a-z][a-z0-9]{1,31}$")
    issuer: str | None = None
    allowed_email_domains: tuple[str, ...] = Field(min_length=1)
    tenant_claim: str | None = None
    tenant_claim_value: str | None = None
    roles_claim: str | None = None
    role_map: dict[str, tuple[Role, ...]] = {}
    default_roles: tuple[Role, ...] = ("member",)
    assignments: tuple[RoleAssignment, ...] = ()

    @field_validator("allowed_email_domains")
    @classmethod
    def _lower_domains(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(d.lower().lstrip("@") for d in v)


class ModelSettings(_Strict):
    provider: str = "openai"
    base_url: str | None = None
    api_key_env: str | None = None
    name: str | None = None
    temperature: float = Field(default=0.3, ge=0, le=2)
    max_tokens: int = Field(default=512, ge=1, le=32768)
    timeout_seconds: float = Field(default=60, gt=0, le=600)
    max_retries: int = Field(default=1, ge=0, le=5)
    history_messages: int = Field(default=12, ge=0, le=200)


    @model_validator(mode="after")
    def _own_endpoint_needs_own_key(self) -> ModelSettings:
        if self.base_url and not self.api_key_env:
            raise ValueError("a tenant base_url needs api_key_env (the deployment key is "
                             "never sent to a tenant's own endpoint)")
        return self


class Limits(_Strict):
    """Limits of one scope (the tenant, a user, an API key); unset means no limit."""

    requests_per_minute: int | None = Field(default=None, ge=0)
    tokens_per_minute: int | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)
    tokens_per_month: int | None = Field(default=None, ge=0)
    monthly_budget_usd: float | None = Field(default=None, ge=0)

    def merged(self, override: Limits) -> Limits:
        """These limits with the fields that ``override`` sets replaced."""
        return self.model_copy(update=override.model_dump(exclude_unset=True))


LIMIT_NAMES = tuple(Limits.model_fields)


class Price(_Strict):
    """USD per million tokens of one model."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)

    def cost_micros(self, prompt_tokens: int, completion_tokens: int) -> int:
        """Cost in micro-USD (integer, for atomic counters), rounded up."""
        return math.ceil(prompt_tokens * self.input_per_million
                         + completion_tokens * self.output_per_million)


class AlertSettings(_Strict):
    thresholds: tuple[float, ...] = (0.8, 1.0)
    webhook_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    webhook_timeout_seconds: float = Field(default=5, gt=0, le=60)
    webhook_retries: int = Field(default=3, ge=0, le=10)

    @field_validator("thresholds")
    @classmethod
    def _fractions(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not all(0 < t <= 1 for t in v):
            raise ValueError("thresholds are fractions of a limit, above 0 and at most 1")
        return tuple(sorted(set(v)))


class AnomalySettings(_Strict):
    """Anomaly detection over the metering rows (see enclave/quota/anomaly.py)."""

    z_threshold: float = Field(default=6.0, gt=0)
    baseline_hours: int = Field(default=168, ge=24, le=24 * 90)
    min_history_hours: int = Field(default=24, ge=1)
    min_tokens: int = Field(default=2000, ge=0)
    refusal_burst: int = Field(default=20, ge=1)
    unusual_hour_share: float = Field(default=0.01, ge=0, le=1)
    auto_throttle: bool = False
    throttle_requests_per_minute: int = Field(default=2, ge=0)
    throttle_tokens_per_minute: int = Field(default=2000, ge=0)


class Quotas(Limits):
    """``[quotas]``: the top-level limits apply to each user (overridden by
    ``[quotas.roles.<role>]``, the most generous role winning, then by
    ``[quotas.users."<email>"]``); ``[quotas.tenant]`` limits the whole tenant together and
    ``[quotas.api_key]`` each API key."""

    tenant: Limits = Limits()
    api_key: Limits = Limits()
    roles: dict[Role, Limits] = {}
    users: dict[str, Limits] = {}
    prices: dict[str, Price] = {}
    on_storage_error: Literal["closed", "open"] = "closed"
    alerts: AlertSettings = AlertSettings()
    anomaly: AnomalySettings = AnomalySettings()

    @field_validator("users")
    @classmethod
    def _emails(cls, v: dict[str, Limits]) -> dict[str, Limits]:
        for email in v:
            if not re.match(r"^[^@\s]+@[^@\s]+$", email):
                raise ValueError(f"'{email}' is not an email address")
        return {e.lower(): lim for e, lim in v.items()}

    @model_validator(mode="after")
    def _budgets_need_prices(self) -> Quotas:
        scopes = [self, self.tenant, self.api_key, *self.roles.values(), *self.users.values()]
        if any(s.monthly_budget_usd is not None for s in scopes) and "default" not in self.prices:
            raise ValueError("a monthly_budget_usd needs [quotas.prices.default] (and a price "
                             "per model that differs), so every turn has a cost")
        return self

    @property
    def user_defaults(self) -> Limits:
        return Limits.model_validate(self.model_dump(include=set(LIMIT_NAMES)))

    def user_limits(self, email: str, roles: tuple[str, ...]) -> Limits:
        """Limits of one user: defaults, then role overrides, then the user's own."""
        limits = self.user_defaults
        granted = [self.roles[r] for r in roles if r in self.roles]
        if granted:
            best: dict[str, Any] = {}
            for override in granted:
                for name, value in override.model_dump(exclude_unset=True).items():
                    best[name] = max(best.get(name, value), value)
            limits = limits.model_copy(update=best)
        own = self.users.get(email.lower())
        return limits.merged(own) if own else limits

    def price(self, model: str) -> Price | None:
        return self.prices.get(model) or self.prices.get("default")


class LoggingSettings(_Strict):
    """``[logging]``: what the turn log keeps, and for how long."""

    content: Literal["full", "metadata"] = "full"  # metadata: no prompt, no response
    retention_days: int = Field(default=90, ge=1, le=3650)


TAG_RE = r"^[a-z0-9][a-z0-9_/-]{0,39}$"


class KnowledgeSettings(_Strict):
    """``[knowledge]``: upload limits and retrieval of the tenant's knowledge base."""

    max_upload_mb: float = Field(default=25, gt=0, le=1024)
    max_unpacked_mb: float = Field(default=200, gt=0, le=4096)  # DOCX/zip bomb cap
    top_k: int = Field(default=5, ge=1, le=50)
    min_similarity: float = Field(default=0.3, ge=-1, le=1)  # cosine; below is not relevant


class TenantFile(_Strict):
    name: str = Field(min_length=1, max_length=120)
    status: Literal["active", "suspended", "expired", "archived"] = "active"
    branding: Branding
    identity: Identity
    model: ModelSettings = ModelSettings()
    quotas: Quotas = Quotas()
    logging: LoggingSettings = LoggingSettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()
    plugins: dict[str, dict[str, Any]] = {}


class AssistantFile(_Strict):
    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    instructions: str = Field(min_length=1)
    model: str | None = None
    default: bool = False
    knowledge_tags: tuple[Annotated[str, Field(pattern=TAG_RE)], ...] | None = None


@dataclass(frozen=True)
class Assistant:
    slug: str
    name: str
    description: str
    instructions: str
    model: str | None
    default: bool
    knowledge_tags: tuple[str, ...] | None = None  # None: all of the tenant's knowledge


@dataclass(frozen=True)
class Tenant:
    """One tenant, immutable once loaded. Passed explicitly everywhere."""

    slug: str
    path: Path
    name: str
    status: str
    branding: Branding
    identity: Identity
    model: ModelSettings
    quotas: Quotas
    system_prompt: str
    assistants: Mapping[str, Assistant]
    plugin_config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    logging: LoggingSettings = LoggingSettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()

    @property
    def active(self) -> bool:
        return self.status == "active"

    def plugin_enabled(self, name: str) -> bool:
        cfg = self.plugin_config.get(name)
        return cfg is not None and bool(cfg.get("enabled", True))

    def plugin_settings(self, name: str) -> Mapping[str, Any]:
        """Settings of plugin ``name`` for this tenant (without ``enabled``)."""
        cfg = self.plugin_config.get(name) or {}
        return MappingProxyType({k: v for k, v in cfg.items() if k != "enabled"})

    def assistant(self, slug: str | None) -> Assistant:
        if slug is None:
            return self.default_assistant
        try:
            return self.assistants[slug]
        except KeyError:
            raise TenantNotFound(f"{self.name} has no assistant '{slug}'") from None

    @property
    def default_assistant(self) -> Assistant:
        for a in self.assistants.values():
            if a.default:
                return a
        return next(iter(self.assistants.values()))

    @property
    def logo_path(self) -> Path | None:
        return self.path / self.branding.logo if self.branding.logo else None


def _fail(file: Path, err: ValidationError | str) -> TenantInvalid:
    if isinstance(err, str):
        return TenantInvalid(f"{file}: {err}")
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return TenantInvalid(f"{file}: field '{where}': {first['msg']}")


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _fail(file, "file is missing") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise _fail(file, f"not valid TOML: {e}") from None


def load_tenant(path: Path) -> Tenant:
    """Load and validate one tenant folder."""
    slug = path.name
    if not SLUG_RE.match(slug):
        raise TenantInvalid(f"{path}: folder name '{slug}' is not a valid slug "
                            f"(lowercase letters, digits and '-', 3 to 32 characters)")
    toml_file = path / "tenant.toml"
    try:
        spec = TenantFile.model_validate(_read_toml(toml_file))
    except ValidationError as e:
        raise _fail(toml_file, e) from None
    if spec.branding.logo:
        logo = (path / spec.branding.logo).resolve()
        if not logo.is_relative_to(path.resolve()) or not logo.is_file():
            raise _fail(toml_file, f"field 'branding.logo': file '{spec.branding.logo}' "
                                   "not found inside the tenant folder")
    if (spec.identity.tenant_claim is None) != (spec.identity.tenant_claim_value is None):
        raise _fail(toml_file, "field 'identity.tenant_claim': set both tenant_claim and "
                               "tenant_claim_value, or neither")
    prompt_file = path / "prompts" / "system.md"
    try:
        system_prompt = prompt_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise _fail(prompt_file, "file is missing") from None
    if not system_prompt:
        raise _fail(prompt_file, "system prompt is empty")
    assistants: dict[str, Assistant] = {}
    for file in sorted((path / "assistants").glob("*.toml")):
        if not SLUG_RE.match(file.stem):
            raise _fail(file, f"file name '{file.stem}' is not a valid assistant slug")
        try:
            a = AssistantFile.model_validate(_read_toml(file))
        except ValidationError as e:
            raise _fail(file, e) from None
        assistants[file.stem] = Assistant(file.stem, a.name, a.description,
                                          a.instructions.strip(), a.model, a.default,
                                          a.knowledge_tags)
    if not assistants:
        raise _fail(path / "assistants", "at least one assistants/*.toml is required")
    if sum(a.default for a in assistants.values()) > 1:
        raise _fail(path / "assistants", "more than one assistant has default = true")
    for name, cfg in spec.plugins.items():
        if not isinstance(cfg, dict):
            raise _fail(toml_file, f"field 'plugins.{name}': must be a table")
    return Tenant(
        slug=slug, path=path, name=spec.name, status=spec.status, branding=spec.branding,
        identity=spec.identity, model=spec.model,
        quotas=spec.quotas,
        system_prompt=system_prompt, assistants=MappingProxyType(assistants),
        plugin_config=MappingProxyType({k: MappingProxyType(v) for k, v in spec.plugins.items()}),
        logging=spec.logging, knowledge=spec.knowledge,
    )


class TenantRegistry:
    """All tenants of one deployment, loaded from a directory. Immutable."""

    def __init__(self, tenants: Mapping[str, Tenant]) -> None:
        self._tenants = dict(tenants)

    @classmethod
    def load(cls, tenants_dir: Path) -> TenantRegistry:
        if not tenants_dir.is_dir():
            raise TenantInvalid(f"{tenants_dir}: tenants directory not found")
        found = {}
        for p in sorted(tenants_dir.iterdir()):
            if p.is_dir() and not p.name.startswith((".", "_")):
                found[p.name] = load_tenant(p)
        by_provider: dict[str, list[Tenant]] = {}
        for t in found.values():
            by_provider.setdefault(t.identity.provider, []).append(t)
        for provider, group in by_provider.items():
            for t in group:
                if len(group) > 1 and not t.identity.tenant_claim:
                    others = ", ".join(o.slug for o in group if o is not t)
                    raise _fail(t.path / "tenant.toml", f"field 'identity.provider': provider "
                                f"'{provider}' is shared with {others}; every tenant of a "
                                "shared provider needs tenant_claim rules")
        return cls(found)

    def get(self, slug: str) -> Tenant:
        try:
            return self._tenants[slug]
        except KeyError:
            raise TenantNotFound(f"no tenant '{slug}'") from None

    def __iter__(self) -> Iterator[Tenant]:
        return iter(self._tenants.values())

    def __len__(self) -> int:
        return len(self._tenants)

    def by_email_domain(self, email: str) -> list[Tenant]:
        domain = email.rsplit("@", 1)[-1].strip().lower()
        return [t for t in self if domain in t.identity.allowed_email_domains]
