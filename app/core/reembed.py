"""Switching the embedding model: an explicit, announced, crash-safe re-embed of every chunk.

The new vectors are written to a side table first (`<chunks>__reembed`); only when it is complete
is the chunks table replaced from it. If the process dies during the swap, opening the store
finishes it (see `Store.__init__`), so the index never ends up with half of each model. No
terminal here: the faces ask for confirmation and show `on_progress(done, total)`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

PAGE = 4096


class ReembedError(Exception):
    """The re-embed could not finish; the index was left as it was."""


def reembed_index(ix: Any, *, on_progress: Callable[[int, int], None] | None = None,
                  cancel: threading.Event | None = None) -> int:
    """Re-embed every chunk of the indexer's store with its configured model. Returns how many
    chunks were re-embedded (0 when the index already uses that model). A cancel stops before
    the swap and leaves the index as it was."""
    import numpy as np
    import pyarrow as pa

    from app.core.store import chunks_schema

    ix.ensure_consistent()
    store = ix.store
    old_model, _ = store.index_model
    new_model = ix.model_id
    total = store.chunks.count_rows()
    if old_model == new_model:
        return 0
    embedder = ix.embedder
    dim = embedder.dim
    schema = chunks_schema(dim, new_model)
    side_name = store.chunks_name + "__reembed"
    if side_name in store.db.list_tables().tables:
        store.db.drop_table(side_name)
    side = store.db.create_table(side_name, schema=schema)
    cols = [n for n in schema.names if n != "vector"]
    done = 0
    while done < total:
        if cancel is not None and cancel.is_set():
            store.db.drop_table(side_name)
            raise ReembedError("The re-embed was stopped; the index still uses "
                               f"{old_model}.")
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
        if on_progress is not None:
            on_progress(done, total)
    if side.count_rows() != total:
        store.db.drop_table(side_name)
        raise ReembedError("The re-embed did not cover every chunk; the index was left as it "
                           "was. Run it again.")
    ix.state.mark_dirty()
    store.swap_chunks_from(side_name)
    store.documents.update(values={"embed_model": new_model})
    store.maintain(force=True)
    ix.rebuild_mirror()
    ix.state.set_meta("index_model", new_model)
    ix.state.mark_clean()
    return total
