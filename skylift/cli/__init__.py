"""The ``skylift`` command. Each command group lives in its own module and registers itself
on :data:`skylift.cli.main.cli` when imported here."""

from __future__ import annotations

import importlib

from skylift.cli.main import cli, share_global_options

__all__ = ["cli", "main"]

# One module per concern; each adds its commands to `cli` on import.
_COMMAND_MODULES = [
    "skylift.cli.models",
    "skylift.cli.config_cmd",
    "skylift.cli.demo",
    "skylift.cli.invoke",
    "skylift.cli.local",
    "skylift.cli.batch",
    "skylift.cli.retrain",
    "skylift.cli.export",
]

for _module in _COMMAND_MODULES:
    importlib.import_module(_module)
share_global_options(cli)


def main() -> None:
    cli(prog_name="skylift")
