# lancedb has no upstream PyInstaller hook. It reads its own distribution metadata at import
# (importlib.metadata.version), loads a native extension, and imports submodules lazily.
from PyInstaller.utils.hooks import collect_all, copy_metadata

datas, binaries, hiddenimports = collect_all("lancedb")
datas += copy_metadata("lancedb")
# Pieces of lancedb that pull in optional heavy stacks we never use (embeddings registry
# integrations, pandas/polars helpers are imported lazily and stay out unless installed).
excludedimports = ["lancedb.embeddings.gte_mlx_model", "torch", "tensorflow", "transformers"]
