# keyring finds its backends through entry points, so the metadata must be bundled; the
# backends themselves are imported by name at run time.
import contextlib

from PyInstaller.utils.hooks import collect_submodules, copy_metadata

datas = copy_metadata("keyring")
hiddenimports = collect_submodules("keyring.backends")
for dist in ("SecretStorage", "jeepney"):
    with contextlib.suppress(Exception):  # not installed on this platform (Windows, macOS)
        datas += copy_metadata(dist)
