"""An add-on parser whose module crashes the process while it is imported, like a native
extension that is broken on this machine. Imported only inside sandbox workers."""

from __future__ import annotations

from tests.helpers.parsers import crash

crash("")  # dies with a segmentation fault (or a hard exit where address 0 does not fault)
