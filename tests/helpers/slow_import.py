"""An add-on parser whose module is slow to import, like a parser library imported cold on a
busy machine. Imported only inside sandbox workers (as "tests.helpers.slow_import:<name>")."""

from __future__ import annotations

import time

from tests.helpers.parsers import hang as _hang
from tests.helpers.parsers import ok as _ok

# Longer than the sandbox tests' 1 s parse time limit, far shorter than the load limit.
IMPORT_SECONDS = 2.5
time.sleep(IMPORT_SECONDS)

ok = _ok
hang = _hang
