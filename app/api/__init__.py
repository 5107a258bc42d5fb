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
- `compat.py`: the original system's entry points, `create_api_service()` (an ASGI app whose
  lifespan runs the Service) and `create_sync_system()` (Service and API together, with signal
  handling); `asgi.py`: `uvicorn app.api.asgi:app`.

`from app.api import create_api_service, create_sync_system, create_orchestration_service`
works, and imports FastAPI only then: the command line imports `app.api.discovery` early, so
this package itself stays light. Nothing here is imported by the layers below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.api.compat import create_api_service, create_sync_system
    from app.service.orchestrator import create_orchestration_service

__all__ = ["create_api_service", "create_orchestration_service", "create_sync_system"]


def __getattr__(name: str) -> Any:
    if name in ("create_api_service", "create_sync_system"):
        from app.api import compat

        return getattr(compat, name)
    if name == "create_orchestration_service":
        from app.service.orchestrator import create_orchestration_service

        return create_orchestration_service
    raise AttributeError(name)
