"""`uvicorn app.api.asgi:app`: the REST API served by any ASGI server, in a process of its own.

The app's lifespan starts the sync service for the home in `LANCEDB_SYNC_HOME` (or the
per-user folders) and stops it on shutdown; the token is in `api.json` in the state folder,
with the address once the server listens (docs/api.md). A process that already owns the index
makes startup fail with a message naming it (uvicorn then exits 3).
"""

from __future__ import annotations

from app.api.compat import ApiService

app = ApiService(own_logging=True).get_app()
