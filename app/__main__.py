import multiprocessing
import sys

if __name__ == "__main__":
    # Parser workers are spawned processes; frozen builds need this before anything else runs.
    multiprocessing.freeze_support()
    from app.cli import main

    sys.exit(main())
