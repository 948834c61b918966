"""Command groups of `conda-repo`, one module each, found by `taipan.cli.main.load_command_modules`.

To add a command, drop a module here that defines ``add_parser(subparsers)``. It adds its parser(s)
with ``subparsers.add_parser(...)`` and sets ``func`` to a callable ``(ctx, args) -> int | None``
(``ctx`` is a ``taipan.cli.context.Context``: ``ctx.client``, ``ctx.out``, ``ctx.url``...). Raise a
``taipan.errors.TaipanError`` for failures; main prints it on one line and picks the exit code.
Set ``manages_auth=True`` in the defaults of a parser that signs in itself (no re-login retry).
"""
