"""Enclave: a multi-tenant ChatGPT workspace."""

from enclave.hookspecs import hookimpl

__all__ = ["hookimpl"]
__version__ = "0.1.0"
