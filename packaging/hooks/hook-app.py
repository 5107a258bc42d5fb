# Our own package: modules imported lazily (commands, parsers by format, the worker process
# entry) are invisible to the import scan.
import contextlib

from PyInstaller.utils.hooks import collect_data_files, collect_submodules, copy_metadata

hiddenimports = collect_submodules("app")
datas = collect_data_files("app")
with contextlib.suppress(Exception):  # a source checkout that was not pip-installed
    datas += copy_metadata("lancedb-sync")
