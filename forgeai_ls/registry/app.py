"""The registry's HTTP API (design.md section 3.5) as a FastAPI application.

Handlers are thin: they call :class:`RegistryService` and turn its errors into
``{"error": {"code", "message", "hint"}}`` bodies with the matching status.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from forgeai_ls import __version__
from forgeai_ls.errors import (
    ArchiveError,
    ForgeAIError,
    PluginError,
    RegistryError,
    RegistryNotFoundError,
)
from forgeai_ls.plugins.archive import archive_name
from forgeai_ls.registry.api_models import (
    ErrorBody,
    ErrorDetail,
    Health,
    PluginDetails,
    PluginList,
    PublishResult,
    VersionList,
    YankResult,
)
from forgeai_ls.registry.refusals import (
    AuthenticationRequiredError,
    PublishRefusal,
    UploadTooLargeError,
)
from forgeai_ls.registry.service import RegistryService

logger = logging.getLogger(__name__)

_UNEXPECTED_CODE = ForgeAIError.CODE
_REQUEST_ERROR_CODE = RegistryError.CODE
_CHUNK_BYTES = 64 * 1024

_DESCRIPTION = """\
The ForgeAI plugin registry: signed executor plugins (`.fpkg` archives) to search, download
and publish.

Published versions are immutable. Every upload is verified before it is stored: safe archive
members, a valid `plugin.yaml`, and an Ed25519 signature over every file by a key registered
for the uploading publisher. Version lists and archives are TUF targets: clients verify them
against the signed metadata under `/v1/tuf/`.

Every error answer is `{"error": {"code": "FORGEAI-Exxx", "message": "...", "hint": ...}}`
with a stable ForgeAI error code.
"""


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


_Responses = dict[int | str, dict[str, Any]]
_CLIENT_ERROR: _Responses = {"4XX": _error("Any other client error (same error body).")}
_NOT_FOUND: _Responses = {404: _error("No such plugin or version (FORGEAI-E303).")}

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "The signed plugin archive (`NAME-VERSION.fpkg`, as made by "
        "`forgeai plugin build`), as the raw request body.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="PublisherToken",
    description="A publisher token from 'forgeai registry token create' (fgr_...).",
)
# Module level, not inside create_app: FastAPI resolves these (string) annotations in the
# module's namespace.
PublisherCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
MAX_OFFSET = 1_000_000_000
"""Past any real catalogue, and far inside SQLite's 64-bit integers."""

PluginName = Annotated[str, Path(description="Plugin name.", max_length=64)]
PluginVersion = Annotated[str, Path(description="Exact version string.", max_length=128)]
TufFilename = Annotated[str, Path(description="Metadata file name.", max_length=64)]


def _status(error: ForgeAIError) -> int:
    if isinstance(error, PublishRefusal):
        return error.STATUS
    if isinstance(error, RegistryNotFoundError):
        return 404
    if isinstance(error, ArchiveError | PluginError):
        return 422
    return 500


def _error_response(
    status: int, code: str, message: str, hint: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, hint=hint))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


async def _forgeai_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ForgeAIError)
    status = _status(exc)
    if status >= 500:
        logger.error("registry error: %s", exc.one_line())
    headers = (
        {"WWW-Authenticate": 'Bearer realm="forgeai-registry"'}
        if isinstance(exc, AuthenticationRequiredError)
        else None
    )
    return _error_response(status, exc.code, exc.message, exc.hint, headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = (
        f"no endpoint {request.method} {request.url.path} on this registry"
        if exc.status_code in (404, 405)
        else str(exc.detail)
    )
    return _error_response(
        exc.status_code,
        _REQUEST_ERROR_CODE,
        message,
        "see /openapi.json for the API",
        dict(exc.headers) if exc.headers else None,
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "request"
    return _error_response(
        400,
        _REQUEST_ERROR_CODE,
        f"invalid request: {where}: {first.get('msg', 'invalid value')}",
        "see /openapi.json for the API",
    )


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected registry error", exc_info=exc)
    return _error_response(
        500,
        _UNEXPECTED_CODE,
        "the registry failed unexpectedly",
        "retry; if it persists, the registry's log has the cause",
    )


async def _read_upload(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to be over ``limit``."""
    too_large = UploadTooLargeError(
        f"the archive is over this registry's {limit}-byte limit",
        hint="plugins are small; keep large data out of the plugin folder",
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _stream(archive: BinaryIO) -> Iterator[bytes]:
    with archive:
        while chunk := archive.read(_CHUNK_BYTES):
            yield chunk


def create_app(service: RegistryService) -> FastAPI:
    """The registry API over ``service`` (which the caller opens and closes)."""
    app = FastAPI(
        title="ForgeAI plugin registry",
        version=__version__,
        description=_DESCRIPTION,
        exception_handlers={
            ForgeAIError: _forgeai_error,
            StarletteHTTPException: _http_error,
            RequestValidationError: _validation_error,
            Exception: _unexpected_error,
        },
    )

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> Health:
        """Liveness: the server answers."""
        return Health()

    @app.get("/v1/plugins", response_model=PluginList, tags=["plugins"], responses=_CLIENT_ERROR)
    def list_plugins(
        q: Annotated[
            str,
            Query(
                max_length=200,
                description="Case-insensitive substring of the name, the description or a "
                "language name; empty lists every plugin.",
            ),
        ] = "",
        limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Plugins to skip.")] = 0,
    ) -> PluginList:
        """Plugins sorted by name, described by their latest versions."""
        return service.search(q, limit, offset)

    @app.get(
        "/v1/plugins/{name}",
        response_model=PluginDetails,
        tags=["plugins"],
        responses={**_NOT_FOUND, **_CLIENT_ERROR},
    )
    def plugin_details(name: PluginName) -> PluginDetails:
        """The latest version (highest version number) of a plugin, and every version."""
        return service.details(name)

    @app.get(
        "/v1/plugins/{name}/versions",
        tags=["plugins"],
        response_class=Response,
        responses={
            200: {
                "model": VersionList,
                "description": "Canonical JSON (sorted keys, no whitespace): exactly the bytes "
                "of the TUF target NAME/versions.json.",
                "content": {"application/json": {}},
            },
            **_NOT_FOUND,
            **_CLIENT_ERROR,
        },
    )
    def plugin_versions(name: PluginName) -> Response:
        """Every published version, ascending, as signed into the TUF targets."""
        return Response(
            service.versions_document(name),
            media_type="application/json",
            headers={"Cache-Control": "no-cache"},
        )

    @app.get(
        "/v1/plugins/{name}/versions/{version}/download",
        tags=["plugins"],
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "The signed archive. ETag is its quoted sha256.",
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            },
            **_NOT_FOUND,
            **_CLIENT_ERROR,
        },
    )
    def download(
        name: PluginName,
        version: PluginVersion,
    ) -> StreamingResponse:
        """The archive of one version (immutable: cacheable forever)."""
        record = service.version(name, version)
        archive = service.open_archive(record)
        return StreamingResponse(
            _stream(archive),
            media_type="application/octet-stream",
            headers={
                "Content-Length": str(record.size),
                "ETag": f'"{record.sha256}"',
                "Content-Disposition": "attachment; "
                f'filename="{archive_name(record.name, record.version)}"',
                "Cache-Control": "public, max-age=31536000, immutable",
            },
        )

    @app.post(
        "/v1/plugins",
        status_code=201,
        response_model=PublishResult,
        tags=["publishing"],
        openapi_extra=_UPLOAD_BODY,
        responses={
            400: _error("Empty upload (FORGEAI-E306)."),
            401: _error("Missing or unknown publisher token (FORGEAI-E306)."),
            403: _error(
                "The name belongs to another publisher, or the signing key is not registered "
                "for this publisher (FORGEAI-E306)."
            ),
            409: _error("This version is already published (FORGEAI-E306)."),
            413: _error("The archive is over the size limit (FORGEAI-E306)."),
            422: _error(
                "Invalid archive (FORGEAI-E230), manifest (E201) or signature (E202, E203)."
            ),
            **_CLIENT_ERROR,
        },
    )
    async def publish(
        request: Request,
        credentials: PublisherCredentials,
    ) -> PublishResult:
        """Publish a signed archive as a new, immutable version."""
        token = credentials.credentials if credentials else None
        publisher = await run_in_threadpool(service.authenticate, token)
        data = await _read_upload(request, service.max_archive_bytes)
        return await run_in_threadpool(service.publish, publisher, data)

    @app.post(
        "/v1/plugins/{name}/versions/{version}/yank",
        response_model=YankResult,
        tags=["publishing"],
        responses={
            401: _error("Missing or unknown publisher token (FORGEAI-E306)."),
            403: _error("The plugin belongs to another publisher (FORGEAI-E306)."),
            404: _error("No such plugin or version (FORGEAI-E303)."),
            **_CLIENT_ERROR,
        },
    )
    async def yank(
        name: PluginName, version: PluginVersion, credentials: PublisherCredentials
    ) -> YankResult:
        """Withdraw a version: install and update skip it from now on; a pin
        (``NAME@VERSION``) still gets it, with a warning. It cannot be published again."""
        token = credentials.credentials if credentials else None
        publisher = await run_in_threadpool(service.authenticate, token)
        return await run_in_threadpool(service.yank, publisher, name, version)

    @app.get(
        "/v1/tuf/{filename}",
        tags=["tuf"],
        response_class=Response,
        responses={
            200: {
                "description": "TUF metadata: timestamp.json, N.root.json, N.snapshot.json, "
                "N.targets.json (consistent snapshots).",
                "content": {"application/json": {}},
            },
            404: _error("No such metadata file or version (FORGEAI-E303)."),
            **_CLIENT_ERROR,
        },
    )
    def tuf_metadata(
        filename: TufFilename,
    ) -> Response:
        """Signed TUF metadata; the first root (1.root.json) is what clients pin."""
        cache = "no-cache" if filename == "timestamp.json" else "public, max-age=31536000"
        return Response(
            service.tuf_metadata(filename),
            media_type="application/json",
            headers={"Cache-Control": cache},
        )

    return app
