"""CLI command groups beyond the core ones in enclave.cli; each module has
``register(sub)`` adding its subcommands to the ``enclave`` parser."""
