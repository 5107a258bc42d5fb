"""Which embedding model an index is built with, and what switching to another one costs.

Strings only: no numpy, no model. A sync that finds nothing changed, `status` and the Settings
window ask these questions without loading the embedding machinery.
"""

from __future__ import annotations

from app.wording import duration

# Chunks per second on one laptop core; used only to tell people how long a re-embed would take.
EMBED_RATE_ESTIMATE = {"wordllama": 1250.0}


class ModelChangeError(Exception):
    """The configured embedding model differs from the one the index was built with."""


def embedder_model_id(spec: str) -> str:
    """The model id an embedder spec would produce, without loading or calling anything."""
    name, _, arg = spec.partition(":")
    if name == "wordllama":
        return f"wordllama/l2_supercat-{arg or 256}"
    return f"{name}/{arg}"


def switch_cost(new_model: str, chunks: int) -> str:
    """About how long re-embedding `chunks` chunks with `new_model` takes, in words."""
    rate = EMBED_RATE_ESTIMATE.get(new_model.split(":")[0].split("/")[0])
    if not rate:
        return "a while (it depends on the endpoint's speed)"
    return f"about {duration(chunks / rate)}"


def model_change_message(old: str, new: str, chunks: int) -> str:
    return (f"The index was built with the embedding model {old}, but the settings now ask for "
            f"{new}. Switching means re-embedding {chunks:,} chunks, "
            f"{switch_cost(new, chunks)}; nothing was changed. Run `lancedb-sync reembed` to "
            f"switch, or set the embedder back to {old}.")
