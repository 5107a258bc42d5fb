"""The peer a developer would otherwise pick: LangChain's indexing API over LanceDB.

This is the baseline the LanceDB Sync app is measured against. It follows the LangChain
"indexing API" recipe as documented, with no tuning, because the point is to measure what a
developer gets out of the box:

* loaders: ``BSHTMLLoader`` (BeautifulSoup, its default ``lxml`` parser) for ``.html`` and
  ``TextLoader(autodetect_encoding=True)`` for ``.txt``, one file at a time so that one bad
  file is skipped and counted instead of aborting the run;
* ``RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=100)``;
* ``index(..., cleanup="incremental", source_id_key="source")`` with a ``SQLRecordManager``
  on a SQLite file and ``langchain_community.vectorstores.LanceDB``;
* the same embedder as the app (WordLlama, 256 dimensions, loaded offline).

Phase ``initial`` starts from an empty work dir; phase ``resync`` runs again over the same work
dir. On a resync the record manager skips unchanged chunks, but LangChain still has to load,
parse, split and hash every document to find that out; that cost is what is measured.

CLI::

    python bench/peer_langchain.py CORPUS WORK --phase initial|resync

prints one JSON line with the figures on stdout (warnings and errors go to stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAMESPACE = "lancedb/peer"
TABLE_NAME = "peer_chunks"
RECORD_DB_NAME = "record_manager.sqlite"
LANCEDB_DIR_NAME = "lancedb"
CHUNK_SIZE = 1000
CHUNK_OVERLAP = 100
SUFFIXES = (".html", ".txt")
PHASES = ("initial", "resync")
# index()'s default; kept explicit so the report says which value produced the figures.
DEFAULT_BATCH_SIZE = 100
# Only a handful of failing paths go into the report; the count is what matters.
MAX_ERROR_SAMPLES = 10


class PeerError(RuntimeError):
    """The peer produced figures that cannot be right; the benchmark must not use them."""


@dataclass
class _Stack:
    """The LangChain pieces, imported lazily so their import cost can be timed and reported."""

    index: Any
    sql_record_manager: Any
    lancedb_store: Any
    bs_html_loader: Any
    text_loader: Any
    splitter_cls: Any
    embeddings: Any  # a langchain_core.embeddings.Embeddings instance wrapping WordLlama


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux; the peer runs in-process, so self is what counts.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _import_stack() -> tuple[_Stack, float, float]:
    """Import LangChain and load WordLlama; returns the stack, import secs and model-load secs."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # langchain-community announces its sunset on import; it is noise in a benchmark log.
        warnings.simplefilter("ignore", DeprecationWarning)
        import wordllama
        from langchain_community.document_loaders import BSHTMLLoader, TextLoader
        from langchain_community.vectorstores import LanceDB
        from langchain_core.embeddings import Embeddings
        from langchain_core.indexing import index
        from langchain_text_splitters import RecursiveCharacterTextSplitter
        from wordllama import WordLlama

        # The docs' ``from langchain.indexes import SQLRecordManager`` lives in langchain-classic
        # since LangChain 1.0 (langchain_core.indexing only ships the in-memory one).
        try:
            from langchain_classic.indexes import SQLRecordManager
        except ImportError:  # older stacks: the community copy
            from langchain_community.indexes._sql_record_manager import SQLRecordManager
    t1 = time.perf_counter()

    # Offline load from the weights shipped inside the wordllama wheel, exactly as the app does.
    wl = WordLlama.load(cache_dir=os.path.dirname(wordllama.__file__), disable_download=True)
    t2 = time.perf_counter()

    class WordLlamaEmbeddings(Embeddings):
        """LangChain adapter: one ``wl.embed`` call per batch that index() hands over."""

        def __init__(self, model: Any) -> None:
            self._model = model

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            if not texts:
                return []
            # LanceDB's LangChain store wants plain lists; WordLlama returns a float32 ndarray.
            return self._model.embed(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    stack = _Stack(
        index=index,
        sql_record_manager=SQLRecordManager,
        lancedb_store=LanceDB,
        bs_html_loader=BSHTMLLoader,
        text_loader=TextLoader,
        splitter_cls=RecursiveCharacterTextSplitter,
        embeddings=WordLlamaEmbeddings(wl),
    )
    return stack, t1 - t0, t2 - t1


def _corpus_files(corpus_dir: Path) -> list[Path]:
    """Every .html/.txt file, in a stable order, skipping hidden paths like DirectoryLoader."""
    files = []
    for path in corpus_dir.rglob("*"):
        rel_parts = path.relative_to(corpus_dir).parts
        if any(part.startswith(".") for part in rel_parts):
            continue
        if path.suffix.lower() in SUFFIXES and path.is_file():
            files.append(path)
    files.sort()
    return files


def _load_documents(stack: _Stack, files: Sequence[Path]) -> tuple[list[Any], list[str]]:
    """Load each file with the loader a developer would pick; skip (and record) any that fail."""
    docs: list[Any] = []
    errors: list[str] = []
    for path in files:
        if path.suffix.lower() == ".html":
            loader = stack.bs_html_loader(str(path))
        else:
            loader = stack.text_loader(str(path), autodetect_encoding=True)
        try:
            loaded = loader.load()
        except Exception as exc:  # a developer's try/except per file: log, skip, go on
            errors.append(f"{path}: {type(exc).__name__}: {exc}")
            continue
        for doc in loaded:
            # LanceDB fixes the metadata struct from the first batch it sees, and a later batch
            # with another key set fails ("field 'title' does not exist in table schema"):
            # BSHTMLLoader sets source+title, TextLoader only source. The usual fix is to give
            # every document the same keys; "" is what BSHTMLLoader itself uses for no title.
            doc.metadata.setdefault("title", "")
        docs.extend(loaded)
    return docs, errors


def _reset_work_dir(work_dir: Path) -> None:
    """Give the initial phase a fresh index without deleting anything we did not create."""
    work_dir.mkdir(parents=True, exist_ok=True)
    record_db = work_dir / RECORD_DB_NAME
    if record_db.exists():
        record_db.unlink()
    lance_dir = work_dir / LANCEDB_DIR_NAME
    if lance_dir.exists():
        shutil.rmtree(lance_dir)


def _check_plausible(report: dict[str, Any]) -> None:
    """Refuse figures that mean the peer silently did not do its job."""
    problems = []
    if report["files_seen"] == 0:
        problems.append("no .html/.txt files found")
    if report["docs_loaded"] == 0:
        problems.append("no documents loaded")
    if report["chunks"] == 0:
        problems.append("no chunks produced")
    handled = report["num_added"] + report["num_updated"] + report["num_skipped"]
    if handled != report["chunks"]:
        # index() accounts for every chunk it is handed: added, updated or skipped (a duplicate
        # counts as skipped). Anything else means chunks were lost on the way.
        problems.append(f"added+updated+skipped={handled} != chunks={report['chunks']}")
    if report["phase"] == "initial":
        if report["num_added"] == 0:
            problems.append("initial run added nothing")
        if report["num_updated"] or report["num_deleted"]:
            problems.append("initial run on a fresh work dir updated or deleted records")
    elif report["num_skipped"] == 0:
        problems.append("resync skipped nothing: the record manager did not remember the index")
    if report["table_rows"] != report["record_keys"]:
        # The vector store and the record manager must agree, or searches return ghosts/holes.
        problems.append(
            f"LanceDB rows={report['table_rows']} != record manager keys={report['record_keys']}"
        )
    if problems:
        raise PeerError("implausible peer figures: " + "; ".join(problems))


def run_peer(
    corpus_dir: Path, work_dir: Path, phase: str, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict[str, Any]:
    """Index corpus_dir into work_dir with LangChain's indexing API and return the figures.

    ``batch_size`` is index()'s own default unless a caller wants to show the tuned variant:
    with incremental cleanup, a source whose chunks span two batches has its later chunks
    deleted and re-embedded on every run (langchain-ai/langchain#32612), so a resync of an
    unchanged corpus is not free at the default.

    ``seconds`` is the wall time of load + split + index() only; imports and the model load are
    reported apart as ``import_load_seconds`` (they are paid once per process, not per sync).
    ``peak_rss_mb`` is this whole process's peak, so run the CLI in a fresh process (as the
    benchmark does) for a figure that is the peer's alone.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
    corpus_dir = Path(corpus_dir).resolve()
    work_dir = Path(work_dir).resolve()
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus dir not found: {corpus_dir}")

    stack, import_s, model_s = _import_stack()

    record_db = work_dir / RECORD_DB_NAME
    if phase == "initial":
        _reset_work_dir(work_dir)
    elif not record_db.exists():
        raise PeerError(f"resync needs an initial run in {work_dir} first")

    record_manager = stack.sql_record_manager(NAMESPACE, db_url=f"sqlite:///{record_db}")
    if phase == "initial":
        record_manager.create_schema()
    vector_store = stack.lancedb_store(
        uri=str(work_dir / LANCEDB_DIR_NAME),
        embedding=stack.embeddings,
        table_name=TABLE_NAME,
        # The default mode is "overwrite", which makes every add_texts() batch replace the whole
        # table: index() writes in batches of 100, so only the last batch would survive.
        mode="append",
    )
    splitter = stack.splitter_cls(chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP)

    t_start = time.perf_counter()
    files = _corpus_files(corpus_dir)
    docs, errors = _load_documents(stack, files)
    t_loaded = time.perf_counter()
    chunks = splitter.split_documents(docs)
    t_split = time.perf_counter()
    result = stack.index(
        chunks,
        record_manager,
        vector_store,
        cleanup="incremental",
        source_id_key="source",
        batch_size=batch_size,
    )
    t_end = time.perf_counter()

    # Read back outside the timed window: these are checks, not part of a sync.
    table = vector_store.get_table()
    table_rows = table.count_rows() if table is not None else 0
    record_keys = len(record_manager.list_keys())

    report: dict[str, Any] = {
        "peer": "langchain",
        "phase": phase,
        "corpus_dir": str(corpus_dir),
        "work_dir": str(work_dir),
        "seconds": round(t_end - t_start, 3),
        "load_seconds": round(t_loaded - t_start, 3),
        "split_seconds": round(t_split - t_loaded, 3),
        "index_seconds": round(t_end - t_split, 3),
        "import_load_seconds": round(import_s + model_s, 3),
        "import_seconds": round(import_s, 3),
        "model_load_seconds": round(model_s, 3),
        "batch_size": batch_size,
        "files_seen": len(files),
        "docs_loaded": len(docs),
        "load_errors": len(errors),
        "load_error_samples": errors[:MAX_ERROR_SAMPLES],
        "chunks": len(chunks),
        "num_added": result["num_added"],
        "num_updated": result["num_updated"],
        "num_skipped": result["num_skipped"],
        "num_deleted": result["num_deleted"],
        "table_rows": table_rows,
        "record_keys": record_keys,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    _check_plausible(report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="folder of .html/.txt files to index")
    parser.add_argument("work", type=Path, help="folder for the record manager and LanceDB")
    parser.add_argument("--phase", choices=PHASES, required=True)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="index() batch size (default: LangChain's own, %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        report = run_peer(args.corpus, args.work, args.phase, batch_size=args.batch_size)
    except PeerError as exc:
        print(f"peer_langchain: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
