"""The packaged app's entry point: PyInstaller runs this file as `__main__` (see lumiku.spec).

Not `lumiku_local/__main__.py`: PyInstaller puts a script's folder on the import path, and the
package's own `queue.py` would then shadow the standard library's `queue`.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child process must not start another server
    from lumiku_local.cli import main

    sys.exit(main())
