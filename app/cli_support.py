"""What every ``switchboard`` sub-app shares: one Typer style and settings loading."""

from __future__ import annotations

import typer

from app.settings import Settings, get_settings


def make_typer(name: str, help: str) -> typer.Typer:
    """A Typer app in the house style: plain help, no pretty tracebacks, help on no args."""
    return typer.Typer(
        name=name,
        help=help,
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
    )


def settings_or_exit() -> Settings:
    """The settings, or exit 2 with the validation error (never a traceback)."""
    try:
        return get_settings()
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
