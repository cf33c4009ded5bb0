"""The ``analysis`` command: one group whose subcommands live in their own modules.

Subcommands are imported only when they run, so ``analysis --help`` stays fast
and ``analysis fit`` works without the optional ``metrics`` extra (torch, timm).
"""

from __future__ import annotations

import importlib

import click

# name -> (module, attribute, one-line help shown by ``analysis --help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "export": (
        "analysis.commands.export",
        "export",
        "Export per-trial responses from a study database to CSV.",
    ),
    "fit": (
        "analysis.commands.fit",
        "fit",
        "Apply exclusions and compute per-model human scores.",
    ),
    "report": (
        "analysis.commands.report",
        "report",
        "Write a self-contained HTML report of human scores.",
    ),
    "metrics": (
        "analysis.commands.metrics",
        "metrics",
        "Compute encoder-based metrics between real and generated images.",
    ),
    "correlate": (
        "analysis.commands.correlate",
        "correlate",
        "Correlate human scores with metric tables.",
    ),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[cmd_name]
        module = importlib.import_module(module_name)
        command: click.Command = getattr(module, attribute)
        return command

    def format_commands(
        self, ctx: click.Context, formatter: click.HelpFormatter
    ) -> None:
        rows = [(name, COMMANDS[name][2]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="realism-study")
def main() -> None:
    """Turn stored responses into human scores and set them against metrics."""
