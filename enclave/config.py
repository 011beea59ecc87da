"""Deployment settings, read from the environment once per process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from enclave.errors import BadInput

ROOT = Path(__file__).resolve().parent.parent
LOCAL_MODEL_URL = "http://127.0.0.1:8765/v1"
LOCAL_MODEL_NAME = "smollm2-135m-instruct"


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name) or str(default)
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1
    if not 0 <= seconds < float("inf"):
        raise BadInput(f"{name} must be a number of seconds (0 or more), got '{value}'")
    return seconds


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    tenants_dir: Path
    plugins_dir: Path
    default_base_url: str
    default_api_key: str
    default_model: str
    default_is_local: bool
    log_prune_seconds: float = 3600.0  # retention pruning interval in the app; 0: off

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        base_url = e.get("OPENAI_BASE_URL") or ""
        key = e.get("OPENAI_API_KEY") or ""
        local = not base_url and not key
        return cls(
            data_dir=Path(e.get("ENCLAVE_DATA_DIR") or ROOT / "data").resolve(),
            tenants_dir=Path(e.get("ENCLAVE_TENANTS_DIR") or ROOT / "tenants").resolve(),
            plugins_dir=Path(e.get("ENCLAVE_PLUGINS_DIR") or ROOT / "plugins").resolve(),
            default_base_url=base_url or ("https://api.openai.com/v1" if key else LOCAL_MODEL_URL),
            default_api_key=key or "local",
            default_model=e.get("ENCLAVE_MODEL") or ("gpt-4o-mini" if not local
                                                      else LOCAL_MODEL_NAME),
            default_is_local=local,
            log_prune_seconds=_seconds(e, "ENCLAVE_LOG_PRUNE_SECONDS", 3600),
        )
