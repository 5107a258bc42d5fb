# The default embedding model ships inside the wordllama package: weights (safetensors),
# tokenizer and config files must travel with it, and its Cython algorithms are extensions.
from PyInstaller.utils.hooks import collect_data_files, collect_submodules, copy_metadata

datas = collect_data_files("wordllama", excludes=["**/RESULTS.md"]) + copy_metadata("wordllama")
hiddenimports = collect_submodules("wordllama")
