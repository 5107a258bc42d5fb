import multiprocessing
import sys

if __name__ == "__main__":
    # Parser workers are spawned processes; frozen builds need this before anything else runs.
    multiprocessing.freeze_support()
    try:
        from app.cli import main

        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C before any work started: nothing to say
        sys.exit(130)
