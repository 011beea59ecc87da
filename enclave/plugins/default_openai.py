"""Built-in model provider ``openai``: any OpenAI-compatible endpoint via ChatOpenAI."""

from __future__ import annotations

from collections.abc import Callable

from enclave import hookimpl
from enclave.hookspecs import ModelFactory
from enclave.model import openai_chat_model


@hookimpl(trylast=True)
def enclave_register_model_providers(register: Callable[[str, ModelFactory], None]) -> None:
    register("openai", openai_chat_model)
