"""Entry point of the frozen app (PyInstaller runs this file as __main__)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # Parser workers are spawned processes: in a frozen build the child re-runs this executable,
    # and freeze_support() turns it into the worker before any app code runs.
    multiprocessing.freeze_support()
    try:
        from app.cli import main

        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
