"""Switching the embedding model: an explicit, announced, crash-safe re-embed of every chunk.

The new vectors are written to a side table first (`<chunks>__reembed`); only when it is complete
is the chunks table replaced from it. If the process dies during the swap, opening the store
finishes it (see `Store.__init__`), so the index never ends up with half of each model.
"""

from __future__ import annotations

import sys
from typing import Any

from app.core.model_switch import model_change_message
from app.core.sync import Indexer

PAGE = 4096


def reembed_index(settings: Any, *, assume_yes: bool) -> int:
    from app.cli import UserError
    from app.core.store import chunks_schema

    with Indexer(settings) as ix:
        ix.ensure_consistent()
        store = ix.store
        old_model, _ = store.index_model
        new_model = ix.model_id
        total = store.chunks.count_rows()
        if old_model == new_model:
            print(f"The index already uses {new_model}; nothing to do.")
            return 0
        print(model_change_message(old_model, new_model, total).split("; nothing")[0] + ".")
        if not assume_yes:
            if not sys.stdin.isatty():
                raise UserError("Add --yes to confirm the re-embed.", 2)
            if input("Re-embed now? [y/N] ").strip().lower() not in ("y", "yes"):
                print("Nothing changed.")
                return 0
        embedder = ix.embedder
        dim = embedder.dim
        schema = chunks_schema(dim, new_model)
        side_name = store.chunks_name + "__reembed"
        if side_name in store.db.list_tables().tables:
            store.db.drop_table(side_name)
        side = store.db.create_table(side_name, schema=schema)
        import numpy as np
        import pyarrow as pa

        cols = [n for n in schema.names if n != "vector"]
        done = 0
        while done < total:
            page = store.chunks.search().select(cols).offset(done).limit(PAGE).to_arrow()
            if page.num_rows == 0:
                break
            vectors = embedder.embed(page.column("text").to_pylist(),
                                     page.column("text_hash").to_pylist())
            vec = pa.FixedSizeListArray.from_arrays(
                pa.array(np.ascontiguousarray(vectors).reshape(-1), pa.float32()), dim)
            arrays = {n: page.column(n) for n in cols}
            arrays["vector"] = vec
            side.add(pa.table([arrays[n] for n in schema.names], schema=schema))
            done += page.num_rows
            print(f"\r{done:,}/{total:,} chunks re-embedded", end="", file=sys.stderr)
        print(file=sys.stderr)
        if side.count_rows() != total:
            raise UserError("The re-embed did not cover every chunk; the index was left as it "
                            "was. Run it again.")
        store.swap_chunks_from(side_name)
        store.documents.update(values={"embed_model": new_model})
        store.maintain(force=True)
        ix.rebuild_mirror()
        ix.state.set_meta("index_model", new_model)
    print(f"Done: {total:,} chunks now use {new_model}.")
    return 0
