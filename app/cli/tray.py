"""`lancedb-sync` / `lancedb-sync tray`: the tray application (app/ui)."""

from __future__ import annotations

from typing import Any

from app.cli.errors import UserError


def cmd_tray(args: Any, settings: Any) -> int:
    # Checked before Qt is imported: a headless machine gets one line, not a Qt abort.
    from app.ui.display import display_problem

    problem = display_problem()
    if problem:
        raise UserError(f"{problem}; the tray needs a desktop session. To keep the index up to "
                        "date without one, run 'lancedb-sync run'.")
    from app.ui.app import run_tray

    return run_tray(settings, home=args.home, window=args.window)
