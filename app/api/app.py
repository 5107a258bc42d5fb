"""The FastAPI application: routes, the error shape, the guard (Host check and token), CORS
when configured, and the interactive documentation served from bundled files (FastAPI's
default page loads Swagger UI from a CDN, which fails offline)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from starlette.routing import Match

from app import __version__
from app.api.errors import ApiError, install_error_handlers
from app.api.events import EventLog
from app.api.jobs import Jobs
from app.api.routes import health_router, router
from app.api.security import Guard

log = logging.getLogger(__name__)

DESCRIPTION = """The local REST API of LanceDB Sync: health, sources, syncing, search, failed
files, backups and a live event stream. Every route but `/health` needs the bearer token from
`api.json` in the app's state folder (`Authorization: Bearer <token>`)."""


@dataclass
class ApiContext:
    service: Any
    events: EventLog
    jobs: Jobs


def create_app(service: Any, *, token: str, extra_hosts: tuple[str, ...] = (),
               cors_origins: tuple[str, ...] = ()) -> Any:
    """The ASGI application for `service`, wrapped in the guard (and CORS when origins are
    given). `app.state.ctx` holds the service, the event log and the jobs."""
    events = EventLog(service.events)
    jobs = Jobs(events.add)
    api = FastAPI(title="LanceDB Sync", version=__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    # The bundled Swagger UI (4.x) reads OpenAPI 3.0 documents only; the schema FastAPI
    # writes renders fine when labelled so.
    api.openapi_version = "3.0.3"
    api.state.ctx = ApiContext(service=service, events=events, jobs=jobs)
    install_error_handlers(api)
    api.include_router(health_router)
    api.include_router(router)
    _docs(api)

    @api.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
                   include_in_schema=False)
    async def unknown(request: Request, path: str) -> None:
        # This catch-all also matches a known path asked with another method: say so (405).
        allowed = [m for m in ("GET", "POST", "DELETE") if any(
            r.matches({**request.scope, "method": m})[0] == Match.FULL
            for r in api.router.routes if getattr(r, "endpoint", None) is not unknown)]
        if allowed:
            raise ApiError(405, "method_not_allowed", f"{request.method} is not allowed on "
                           f"/{path}; use {' or '.join(allowed)}.",
                           headers={"Allow": ", ".join(allowed)})
        raise ApiError(404, "not_found", f"No route /{path}. See /docs for the routes.")

    app: Any = api
    if cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app = CORSMiddleware(app, allow_origins=list(cors_origins),
                             allow_methods=["GET", "POST", "DELETE"],
                             allow_headers=["Authorization", "Content-Type", "Last-Event-ID"])
    guarded = Guard(app, token=token, extra_hosts=extra_hosts)
    guarded.api = api  # type: ignore[attr-defined]  # tests and the server reach the state
    return guarded


def _assets() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def _docs(api: FastAPI) -> None:
    files = {"swagger-ui-bundle.js": "application/javascript",
             "swagger-ui.css": "text/css", "favicon-32x32.png": "image/png"}

    @api.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if _assets() is None:
            return HTMLResponse("<p>The interactive page is not bundled with this build; the "
                                "routes are described in <a href='/openapi.json'>openapi.json"
                                "</a>.</p>")
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="LanceDB Sync API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png")

    @api.get("/docs/assets/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        folder = _assets()
        if name not in files or folder is None or not (folder / name).is_file():
            raise ApiError(404, "not_found", f"No asset {name!r}.")
        return FileResponse(folder / name, media_type=files[name],
                            headers={"Cache-Control": "max-age=86400"})
