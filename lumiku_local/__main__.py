"""`python -m lumiku_local` does what `lumiku` does."""

import multiprocessing

from .cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # where PyInstaller needs it; a no-op elsewhere
    raise SystemExit(main())
