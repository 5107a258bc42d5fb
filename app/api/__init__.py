"""The local REST API (docs/api.md): FastAPI served by uvicorn inside the process that owns the
index (the tray, `lancedb-sync run`, `lancedb-sync api`), on that process's asyncio loop.

- `routes.py`, `models.py`: the routes and their request/response shapes; `errors.py`: the one
  error shape; `security.py`: Host check, bearer token, CORS.
- `events.py`: the Server-Sent Events log (ids, `Last-Event-ID` resume); `jobs.py`: long writes
  (cleanup, a manual sync, a backup) as jobs a client can follow and cancel.
- `server.py`: uvicorn on a socket we bind (TCP_NODELAY), without its signal handling, stopped
  in the app's own shutdown order; `discovery.py`: the 0600 `api.json` (URL and token) that
  other programs and the command line read; `client.py`: the command line's client (stdlib
  only, so a command routed through a running app starts fast).
- `compat.py`: the seed's entry points (`create_api_service`, `create_sync_system`).

Nothing here is imported by the layers below; only `discovery` and `client` are imported by
the command line before it knows whether a server runs.
"""
