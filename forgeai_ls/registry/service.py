"""RegistryService: what the registry does, independent of HTTP.

Publishing verifies an upload completely before anything is stored: size, safe archive
members, manifest, signature by one of the publisher's registered keys over every file, name
ownership and version immutability. Then the archive goes to the blob store and its metadata,
the plugin's new ``versions.json`` and the new TUF targets, snapshot and timestamp are
committed in one transaction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from packaging.version import Version

from forgeai_ls.errors import RegistryNotFoundError, UnsignedPluginError
from forgeai_ls.plugins.archive import MAX_ARCHIVE_BYTES, archive_name, read_archive
from forgeai_ls.plugins.manifest import PluginManifest
from forgeai_ls.plugins.signing import (
    SIGNATURE_NAME,
    PluginFiles,
    parse_signature,
    verify_signature,
)
from forgeai_ls.registry.api_models import (
    PluginDetails,
    PluginList,
    PluginSummary,
    PublishResult,
    VersionEntry,
    VersionList,
    YankResult,
)
from forgeai_ls.registry.refusals import (
    AuthenticationRequiredError,
    EmptyUploadError,
    PublishForbiddenError,
    UploadTooLargeError,
    VersionExistsError,
)
from forgeai_ls.registry.storage import (
    DATABASE_NAME,
    BlobStore,
    FileBlobStore,
    MetadataStore,
    PluginRecord,
    PublisherRecord,
    SQLiteMetadataStore,
    VersionRecord,
    utc_now_text,
)
from forgeai_ls.registry.tokens import authenticate, registered_key
from forgeai_ls.registry.tuf_repository import TufRepository, target_paths

_UPLOAD = "the uploaded archive"


@dataclass(frozen=True, slots=True)
class VerifiedUpload:
    """An upload whose archive, manifest and signature passed."""

    manifest: PluginManifest
    key_id: str


def version_entry(record: VersionRecord) -> VersionEntry:
    return VersionEntry(
        version=record.version,
        sha256=record.sha256,
        size=record.size,
        key_id=record.key_id,
        minimum_forgeai_version=record.minimum_forgeai_version,
        maximum_forgeai_version=record.maximum_forgeai_version,
        published_at=record.published_at,
        description=record.description,
        languages=list(record.languages),
        yanked=record.yanked_at is not None,
    )


def _summary(plugin: PluginRecord) -> PluginSummary:
    return PluginSummary(
        name=plugin.name,
        latest_version=plugin.latest_version,
        description=plugin.description,
        author=plugin.author,
        languages=list(plugin.languages),
        updated_at=plugin.updated_at,
    )


def latest_of(versions: list[VersionRecord]) -> VersionRecord:
    """The highest final release (``2.0.0rc1``, ``1.1.dev1``, ``3.0.0-beta`` are not one) that
    was not yanked, else the highest pre-release, else the highest. ``versions``: sorted."""
    standing = [item for item in versions if item.yanked_at is None] or versions
    finals = [item for item in standing if not Version(item.version).is_prerelease]
    return (finals or standing)[-1]


def _details(latest: VersionRecord, versions: list[VersionRecord]) -> PluginDetails:
    return PluginDetails(
        name=latest.name,
        version=latest.version,
        description=latest.description,
        author=latest.author,
        license=latest.license,
        homepage=latest.homepage,
        repository=latest.repository,
        languages=list(latest.languages),
        sha256=latest.sha256,
        size=latest.size,
        key_id=latest.key_id,
        publisher=latest.publisher,
        minimum_forgeai_version=latest.minimum_forgeai_version,
        maximum_forgeai_version=latest.maximum_forgeai_version,
        published_at=latest.published_at,
        versions=[record.version for record in versions],
    )


class RegistryService:
    """Publish, search and serve plugins over a metadata store, a blob store and TUF."""

    def __init__(
        self,
        metadata: MetadataStore,
        blobs: BlobStore,
        tuf: TufRepository,
        *,
        max_archive_bytes: int = MAX_ARCHIVE_BYTES,
    ) -> None:
        self.metadata = metadata
        self.blobs = blobs
        self.tuf = tuf
        self.max_archive_bytes = max_archive_bytes
        tuf.initialize(metadata)

    @classmethod
    def embedded(cls, data: Path, *, max_archive_bytes: int = MAX_ARCHIVE_BYTES) -> RegistryService:
        """The default deployment: everything under the folder ``data``
        (``registry.sqlite3``, ``blobs/``, ``keys/``)."""
        metadata = SQLiteMetadataStore(data / DATABASE_NAME)
        try:
            return cls(
                metadata,
                FileBlobStore(data / "blobs"),
                TufRepository(data / "keys"),
                max_archive_bytes=max_archive_bytes,
            )
        except BaseException:
            metadata.close()
            raise

    def close(self) -> None:
        self.metadata.close()

    # -- publishing -------------------------------------------------------------------------

    def authenticate(self, token: str | None) -> PublisherRecord:
        """The publisher of a bearer token; AuthenticationRequiredError (401) otherwise."""
        if not token:
            raise AuthenticationRequiredError(
                "publishing needs a publisher token (Authorization: Bearer TOKEN)",
                hint="ask the registry operator for one ('forgeai registry token create')",
            )
        publisher = authenticate(self.metadata, token)
        if publisher is None:
            raise AuthenticationRequiredError(
                "the publisher token is not valid for this registry",
                hint="check the token; the operator can create a new one",
            )
        return publisher

    def verify_upload(self, publisher: PublisherRecord, data: bytes) -> VerifiedUpload:
        """Every check that needs only the upload and its publisher (nothing is stored)."""
        if not data:
            raise EmptyUploadError(
                "the upload is empty", hint="send the .fpkg archive as the request body"
            )
        if len(data) > self.max_archive_bytes:
            raise UploadTooLargeError(
                f"the archive is {len(data)} bytes, over this registry's "
                f"{self.max_archive_bytes}-byte limit",
                hint="plugins are small; keep large data out of the plugin folder",
            )
        contents = read_archive(data, _UPLOAD, max_bytes=self.max_archive_bytes)
        manifest = contents.manifest(_UPLOAD)
        signature = contents.files.get(SIGNATURE_NAME)
        if signature is None:
            raise UnsignedPluginError(
                manifest.name,
                f"the archive has no {SIGNATURE_NAME}; the registry accepts signed plugins only",
                hint="build with 'forgeai plugin build --sign-key NAME'",
            )
        document = parse_signature(signature, manifest.name)
        signer = str(document["key_id"])
        public_key = registered_key(publisher, signer)
        if public_key is None:
            raise PublishForbiddenError(
                f"plugin '{manifest.name}' is signed by key {signer}, which is not registered "
                f"for publisher '{publisher.name}'",
                hint="sign with a key registered for this publisher, or have the operator "
                "register it ('forgeai registry token create PUBLISHER --key KEY.pub')",
            )
        files = PluginFiles(
            root=Path(archive_name(manifest.name, manifest.version)), contents=contents.files
        )
        verify_signature(document, public_key, files, manifest.name, manifest.version)
        return VerifiedUpload(manifest=manifest, key_id=signer)

    def publish(self, publisher: PublisherRecord, data: bytes) -> PublishResult:
        """Verify and store an archive; the new version is visible (and signed) at once."""
        upload = self.verify_upload(publisher, data)
        manifest = upload.manifest
        with self.metadata.transaction() as transaction:
            plugin = transaction.plugin(manifest.name)
            if plugin is not None and plugin.owner != publisher.name:
                raise PublishForbiddenError(
                    f"plugin '{manifest.name}' belongs to publisher '{plugin.owner}'; "
                    f"'{publisher.name}' may not publish it",
                    hint="choose another plugin name",
                )
            versions = transaction.versions(manifest.name)
            if any(Version(record.version) == manifest.parsed_version for record in versions):
                raise VersionExistsError(
                    f"plugin '{manifest.name}' version {manifest.version} is already "
                    "published; published versions are immutable",
                    hint="bump the version in plugin.yaml and publish again",
                )
            record = VersionRecord(
                name=manifest.name,
                version=manifest.version,
                sha256=self.blobs.put(data),
                size=len(data),
                key_id=upload.key_id,
                publisher=publisher.name,
                description=manifest.description,
                author=manifest.author,
                license=manifest.license,
                homepage=manifest.homepage,
                repository=manifest.repository,
                languages=tuple(manifest.supported_languages),
                minimum_forgeai_version=manifest.minimum_forgeai_version,
                maximum_forgeai_version=manifest.maximum_forgeai_version,
                published_at=utc_now_text(),
            )
            versions = sorted([*versions, record], key=lambda item: Version(item.version))
            latest = latest_of(versions)
            document = VersionList(
                name=manifest.name, versions=[version_entry(item) for item in versions]
            ).canonical_bytes()
            summary = PluginRecord(
                name=manifest.name,
                owner=publisher.name,
                latest_version=latest.version,
                description=latest.description,
                author=latest.author,
                languages=latest.languages,
                updated_at=record.published_at,
            )
            transaction.add_version(record, summary, document)
            versions_path, archive_path = target_paths(
                manifest.name, archive_name(manifest.name, manifest.version)
            )
            self.tuf.add_targets(transaction, {versions_path: document, archive_path: data})
        return PublishResult(
            name=record.name,
            version=record.version,
            sha256=record.sha256,
            size=record.size,
            key_id=record.key_id,
            publisher=record.publisher,
        )

    def yank(self, publisher: PublisherRecord, name: str, version: str) -> YankResult:
        """Withdraw a version from resolution (its owner only); re-signs ``versions.json``."""
        with self.metadata.transaction() as transaction:
            plugin = transaction.plugin(name)
            if plugin is None:
                raise _no_plugin(name)
            if plugin.owner != publisher.name:
                raise PublishForbiddenError(
                    f"plugin '{name}' belongs to publisher '{plugin.owner}'; "
                    f"'{publisher.name}' may not yank it"
                )
            versions = transaction.versions(name)
            if not any(record.version == version for record in versions):
                raise RegistryNotFoundError(
                    f"plugin '{name}' has no version {version} in this registry",
                    hint=f"see GET /v1/plugins/{name}/versions",
                )
            now = utc_now_text()
            versions = [
                dataclasses.replace(record, yanked_at=record.yanked_at or now)
                if record.version == version
                else record
                for record in versions
            ]
            latest = latest_of(versions)
            document = VersionList(
                name=name, versions=[version_entry(item) for item in versions]
            ).canonical_bytes()
            summary = dataclasses.replace(
                plugin,
                latest_version=latest.version,
                description=latest.description,
                author=latest.author,
                languages=latest.languages,
                updated_at=now,
            )
            transaction.yank_version(name, version, now, summary, document)
            versions_path, _ = target_paths(name, archive_name(name, version))
            self.tuf.add_targets(transaction, {versions_path: document})
        return YankResult(name=name, version=version, yanked_at=now)

    # -- reading ----------------------------------------------------------------------------

    def search(self, query: str, limit: int, offset: int) -> PluginList:
        plugins, total = self.metadata.search_plugins(query, limit, offset)
        return PluginList(plugins=[_summary(plugin) for plugin in plugins], total=total)

    def details(self, name: str) -> PluginDetails:
        versions = self.metadata.versions(name)
        if not versions:
            raise _no_plugin(name)
        return _details(latest_of(versions), versions)

    def versions_document(self, name: str) -> bytes:
        """The exact bytes of the TUF target ``NAME/versions.json``."""
        document = self.metadata.versions_document(name)
        if document is None:
            raise _no_plugin(name)
        return document

    def version(self, name: str, version: str) -> VersionRecord:
        record = self.metadata.version(name, version)
        if record is None:
            if self.metadata.plugin(name) is None:
                raise _no_plugin(name)
            raise RegistryNotFoundError(
                f"plugin '{name}' has no version {version} in this registry",
                hint=f"see GET /v1/plugins/{name}/versions",
            )
        return record

    def open_archive(self, record: VersionRecord) -> BinaryIO:
        return self.blobs.open(record.sha256)

    def tuf_metadata(self, filename: str) -> bytes:
        data = self.tuf.metadata_file(self.metadata, filename)
        if data is None:
            raise RegistryNotFoundError(
                f"no TUF metadata file {filename!r} in this registry",
                hint="files are timestamp.json and N.root.json, N.snapshot.json, N.targets.json",
            )
        return data


def _no_plugin(name: str) -> RegistryNotFoundError:
    return RegistryNotFoundError(
        f"no plugin named '{name}' in this registry", hint="see GET /v1/plugins?q=..."
    )
