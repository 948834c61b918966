"""Where output goes: data on stdout (tables for people, JSON or YAML for scripts), messages on stderr.

rich honours NO_COLOR and drops styling when the stream is not a terminal, so piped output is plain.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

# `conda-repo channel ...` or `conda repo channel ...`, not conda-repo-cli nor "conda repository".
COMMAND_PREFIX = re.compile(r"\bconda[- ]repo\b(?![-\w])")


class Output:
    def __init__(self, quiet: bool = False, verbose: bool = False, prog: str = "conda-repo") -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.prog = prog
        # A pipe has no width; a wide virtual terminal keeps table rows on one line each.
        out_width = None if sys.stdout.isatty() else 200
        err_width = None if sys.stderr.isatty() else 200
        self.out = Console(file=sys.stdout, width=out_width, highlight=False, soft_wrap=True)
        self.err = Console(file=sys.stderr, width=err_width, highlight=False, soft_wrap=True)

    # -- messages (stderr) ------------------------------------------------------------------
    def commands(self, text: str) -> str:
        """Name commands the way the user ran us: hints (ours and the server's, which says
        `conda repo ...`) come out as `conda repo ...` under conda and `conda-repo ...` otherwise."""
        return COMMAND_PREFIX.sub(self.prog, text)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(escape(self.commands(message)))

    def success(self, message: str) -> None:
        if not self.quiet:
            self.err.print(f"[green]{escape(self.commands(message))}[/green]")

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/yellow] {escape(self.commands(message))}")

    def error(self, message: str, hint: str = "") -> None:
        # One line per error, so logs and scripts can grep it; the hint says what to do next.
        text = f"[bold red]error:[/bold red] {escape(self.commands(message))}"
        if hint:
            text += f" [dim](hint: {escape(self.commands(hint))})[/dim]"
        self.err.print(text)

    def debug(self, message: str) -> None:
        if self.verbose:
            self.err.print(f"[dim]{escape(message)}[/dim]")

    # -- data (stdout) ----------------------------------------------------------------------
    def json(self, data: Any) -> None:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        sys.stdout.flush()

    def yaml(self, data: Any) -> None:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
        sys.stdout.flush()

    def line(self, text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None,
              *, stderr: bool = False) -> None:
        table = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold", title_justify="left")
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*("" if cell is None else escape(str(cell)) for cell in row))
        (self.err if stderr else self.out).print(table)

    def fields(self, pairs: Iterable[tuple[str, Any]]) -> None:
        pairs = list(pairs)
        width = max((len(k) for k, _ in pairs), default=0)
        for key, value in pairs:
            self.line(f"{key.ljust(width)} : {'' if value is None else value}")
