"""The ``certstatus`` command line: the group (:mod:`~certstatus.cli.commands`) with every command added.

Each command lives in its own module of this package and imports only what it
runs; the shared pieces are :mod:`~certstatus.cli.settings` (settings from
``--config`` or the single-CA options), :mod:`~certstatus.cli.options` (the
option groups) and :mod:`~certstatus.cli.output` (tables, JSON, errors).
Nothing outside this package imports it, and no module of it imports this one.
"""

from __future__ import annotations

from certstatus.check.command import check_command
from certstatus.cli.commands import main
from certstatus.cli.db import db
from certstatus.cli.generate import generate_command
from certstatus.cli.operations import billing_group, config_group
from certstatus.cli.options import signer_options
from certstatus.cli.settings import settings_from_options
from certstatus.cli.signers import register_signer_commands
from certstatus.cli.sources import register as register_source_commands

__all__ = ["main"]

register_signer_commands(main, signer_options, settings_from_options)
register_source_commands(main)
for _command in (db, config_group, billing_group, generate_command, check_command):
    main.add_command(_command)
