"""Building a plugin's container image, offline, from its verified files.

The build context is exactly the plugin's verified files (the Dockerfile is one of the signed
files) plus ``rootfs.tar``, a root filesystem made from the host's packages (see rootfs.py)
when the Dockerfile uses it. Images are never pulled: every base image a Dockerfile names must
already be in the engine, else the build is refused before anything is sent.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tarfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, cast

import docker
from docker.errors import APIError, BuildError, DockerException, ImageNotFound
from pydantic import BaseModel, ConfigDict
from requests.exceptions import RequestException

from forgeai_ls.errors import (
    DockerUnavailableError,
    EngineRefusedError,
    ImageBuildError,
    IntegrityError,
    PluginError,
    PluginNotFoundError,
)
from forgeai_ls.images.rootfs import RootfsResult, build_rootfs
from forgeai_ls.plugins.loader import PluginLoader, PluginSource, VerifiedPlugin
from forgeai_ls.plugins.manager import ManagerConfig
from forgeai_ls.plugins.manifest import read_manifest
from forgeai_ls.plugins.official_lock import OfficialLock
from forgeai_ls.plugins.registry import PluginRegistry
from forgeai_ls.plugins.signing import PluginFiles, read_plugin_files
from forgeai_ls.plugins.trust import TrustStore
from forgeai_ls.plugins.verification_cache import VerificationCache

log = logging.getLogger(__name__)

DOCKERFILE_NAME = "Dockerfile"
ROOTFS_NAME = "rootfs.tar"
BUILD_TIMEOUT = 1800
"""Seconds the engine may take for one build (a JDK's root filesystem is ~330 MB)."""

LABEL_PLUGIN = "dev.forgeai.plugin"
LABEL_VERSION = "dev.forgeai.plugin.version"
LABEL_CONTENT = "dev.forgeai.plugin.content-digest"
LABEL_ROOTFS = "dev.forgeai.rootfs"
_LOG_TAIL_LINES = 8

Progress = Callable[[str], None]


class ImageBuildResult(BaseModel):
    """One plugin image, built (or found up to date) in the engine."""

    model_config = ConfigDict(frozen=True)

    plugin: str
    version: str
    tag: str
    image_id: str
    size_bytes: int
    seconds: float
    up_to_date: bool
    """True when the engine already had this image built from the same files and packages."""
    rootfs: RootfsResult | None
    """The root filesystem put in the context; None when the Dockerfile does not use one."""


class ImageStatus(BaseModel):
    """A plugin's image as the engine has it."""

    model_config = ConfigDict(frozen=True)

    plugin: str
    version: str
    image: str | None
    """The manifest's container_image; None when the plugin declares none."""
    has_dockerfile: bool
    present: bool
    up_to_date: bool | None
    """Built from this version's files (None when absent)."""
    image_id: str | None
    size_bytes: int | None


# -- which plugin ---------------------------------------------------------------------------


def default_loader(config: ManagerConfig | None = None) -> PluginLoader:
    """The loader the PluginManager would use for ``config`` (the same trust policy)."""
    config = config or ManagerConfig.from_environment()
    return PluginLoader(
        trust_store=TrustStore(config.home),
        policy=config.policy,
        official_lock=OfficialLock.load(),
        cache=VerificationCache(config.home / "cache" / "verified-signatures.json"),
    )


def _looks_like_path(text: str) -> bool:
    return "/" in text or text in (".", "..") or text.startswith("~")


def _source_of(path: Path, config: ManagerConfig) -> PluginSource:
    bundled = config.bundled_dir.resolve() if config.bundled_dir else None
    return PluginSource.BUNDLED if path.resolve().parent == bundled else PluginSource.EXTRA


def resolve_plugin(name_or_path: str, config: ManagerConfig | None = None) -> VerifiedPlugin:
    """A verified plugin: the installed one of that name (the one the PluginManager would use:
    bundled < installed < extra directories), or the plugin folder at that path."""
    config = config or ManagerConfig.from_environment()
    loader = default_loader(config)
    if _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_dir():
            raise PluginNotFoundError(path.name, f"no plugin folder at {path}")
        return loader.verify(path, _source_of(path, config))
    registry = PluginRegistry(config.bundled_dir, config.home / "plugins", config.extra_dirs)
    rank = {PluginSource.BUNDLED: 0, PluginSource.INSTALLED: 1, PluginSource.EXTRA: 2}
    candidates = []
    for location in registry.discover():
        try:
            manifest, _ = read_manifest(location.path)
        except PluginError:
            continue
        if manifest.name == name_or_path:
            candidates.append(location)
    candidates.sort(key=lambda location: -rank[location.source])
    refusal: PluginError | None = None
    for location in candidates:
        try:
            return loader.verify(location.path, location.source)
        except PluginError as error:
            refusal = refusal or error
    if refusal is not None:
        raise refusal
    if Path(name_or_path).is_dir():
        return loader.verify(Path(name_or_path), PluginSource.EXTRA)
    raise PluginNotFoundError(
        name_or_path,
        "is not installed",
        hint="see 'forgeai plugin list', or give the path of a plugin folder",
    )


def verified_files(plugin: VerifiedPlugin) -> PluginFiles:
    """The plugin's files, read now, refused unless they are the bytes that were verified."""
    files = read_plugin_files(plugin.path, plugin.name)
    if files.content_digest() != plugin.content_digest:
        raise IntegrityError(
            plugin.name,
            f"files in {plugin.path} changed since the plugin was verified",
            hint="run the command again",
        )
    return files


# -- the Dockerfile ---------------------------------------------------------------------------


def base_images(dockerfile: str) -> list[str]:
    """Images the Dockerfile builds on (FROM, COPY --from) other than ``scratch`` and its own
    stages: each must already be in the engine, since ForgeAI never pulls."""
    text = re.sub(r"\\[ \t]*\r?\n", " ", dockerfile)
    stages: set[str] = set()
    images: list[str] = []
    stage_count = 0

    def need(image: str) -> None:
        if "$" in image:
            raise ImageBuildError(
                f"the Dockerfile names the image '{image}' through a build argument",
                hint="name base images literally: ForgeAI checks they are present before "
                "building (it never pulls)",
            )
        if image.lower() != "scratch" and image.lower() not in stages and image not in images:
            images.append(image)

    for index, line in enumerate(text.splitlines()):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "FROM":
            arguments = [w for w in words[1:] if not w.startswith("--")]
            if not arguments:
                raise ImageBuildError(f"the Dockerfile's FROM on line {index + 1} names no image")
            need(arguments[0])
            if len(arguments) >= 3 and arguments[1].upper() == "AS":
                stages.add(arguments[2].lower())
            stages.add(str(stage_count))  # COPY --from=0 names the first stage
            stage_count += 1
        elif instruction in ("COPY", "ADD"):
            for word in words[1:]:
                if word.startswith("--from="):
                    source = word.removeprefix("--from=")
                    if source.lower() not in stages:
                        need(source)
    return images


def _require_present(client: docker.DockerClient, images: Iterable[str], plugin: str) -> None:
    for image in images:
        try:
            client.images.get(image)
        except ImageNotFound:
            raise ImageBuildError(
                f"plugin '{plugin}': the Dockerfile builds on {image}, which is not in the "
                "engine, and ForgeAI never pulls images",
                hint=f"load {image} into the engine first ('docker load -i FILE'), or build "
                "FROM scratch with 'ADD rootfs.tar /' (see docs/docker.md)",
            ) from None
        except APIError as exc:
            raise EngineRefusedError(
                f"the engine refused to inspect image {image}: {_explanation(exc)}"
            ) from None


# -- the build context --------------------------------------------------------------------------


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class ContextStream(io.RawIOBase):
    """The build context as one tar stream of known length: the plugin's verified files from
    memory, then ``rootfs.tar`` read from disk piece by piece (never held in memory whole)."""

    def __init__(self, files: dict[str, bytes], rootfs: Path | None) -> None:
        super().__init__()
        self._parts: list[bytes | io.BufferedReader] = []
        self._sizes: list[int] = []
        for name, data in sorted(files.items()):
            self._add(_tar_header(name, len(data)), data, b"\0" * (-len(data) % 512))
        if rootfs is not None:
            handle = rootfs.open("rb")  # opened now: a concurrent rebuild cannot swap it
            size = os.fstat(handle.fileno()).st_size
            self._add(_tar_header(ROOTFS_NAME, size))
            self._parts.append(handle)
            self._sizes.append(size)
            self._add(b"\0" * (-size % 512))
        self._add(b"\0" * 1024)
        self._length = sum(self._sizes)
        self._index = 0
        self._offset = 0

    def _add(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self._parts.append(chunk)
            self._sizes.append(len(chunk))

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while self._index < len(self._parts):
            part, size = self._parts[self._index], self._sizes[self._index]
            wanted = min(len(view), size - self._offset)
            if wanted > 0:
                if isinstance(part, bytes):
                    view[:wanted] = part[self._offset : self._offset + wanted]
                    count = wanted
                else:
                    count = part.readinto(view[:wanted])
                    if not count:
                        raise ImageBuildError(f"{ROOTFS_NAME} shrank while it was being sent")
                self._offset += count
                return int(count)
            self._index += 1
            self._offset = 0
        return 0

    def close(self) -> None:
        for part in self._parts:
            if not isinstance(part, bytes):
                part.close()
        super().close()


# -- the build ---------------------------------------------------------------------------------


def _explanation(exc: APIError) -> str:
    return " ".join(str(exc.explanation or exc).split())[:300]


def _log_tail(build_log: Iterable[Any]) -> str:
    lines: list[str] = []
    for event in build_log:
        if isinstance(event, dict):
            text = event.get("stream") or event.get("error") or event.get("status") or ""
            lines += [line for line in str(text).splitlines() if line.strip()]
    return " | ".join(lines[-_LOG_TAIL_LINES:])


def _labels(plugin: VerifiedPlugin, rootfs: RootfsResult | None) -> dict[str, str]:
    labels = {
        LABEL_PLUGIN: plugin.name,
        LABEL_VERSION: plugin.manifest.version,
        LABEL_CONTENT: plugin.content_digest,
    }
    if rootfs is not None:
        labels[LABEL_ROOTFS] = rootfs.digest
    return labels


def _find_image(client: docker.DockerClient, tag: str) -> Any:
    try:
        return client.images.get(tag)
    except ImageNotFound:
        return None
    except APIError as exc:
        raise EngineRefusedError(f"the engine refused to inspect image {tag}: {exc}") from None


def build_plugin_image(
    plugin: VerifiedPlugin | Path,
    client: docker.DockerClient,
    *,
    config: ManagerConfig | None = None,
    cache_dir: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> ImageBuildResult:
    """Build the plugin's image (tagged with its manifest's container_image) in the engine.

    A folder is verified first, through the loader with ``config``'s trust policy (default:
    the environment's). Root filesystems are cached in ``cache_dir`` (default:
    ``cache/rootfs`` under ``config``'s home, else FORGEAI_HOME). With ``force`` the root
    filesystem is made again and the image rebuilt even when the engine has one built from
    the same files and packages.
    """
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    if cache_dir is None and config is not None:
        cache_dir = config.home / "cache" / "rootfs"
    if isinstance(plugin, Path):
        config = config or ManagerConfig.from_environment()
        plugin = default_loader(config).verify(plugin, _source_of(plugin, config))
    files = verified_files(plugin)
    name, tag = plugin.name, plugin.manifest.container_image
    if tag is None:
        raise ImageBuildError(
            f"plugin '{name}' declares no container_image",
            hint="add 'container_image: NAME:TAG' to its plugin.yaml",
        )
    raw = files.contents.get(DOCKERFILE_NAME)
    if raw is None:
        raise ImageBuildError(
            f"plugin '{name}' has no {DOCKERFILE_NAME}",
            hint="add one, e.g. 'FROM scratch', 'ADD rootfs.tar /', 'USER 65534:65534' "
            "(see docs/docker.md)",
        )
    if ROOTFS_NAME in files.contents:
        raise ImageBuildError(
            f"plugin '{name}' contains a file named {ROOTFS_NAME}, a name ForgeAI reserves for "
            "the root filesystem it generates",
            hint=f"rename the plugin's {ROOTFS_NAME}",
        )
    dockerfile = raw.decode("utf-8", errors="replace")
    _require_present(client, base_images(dockerfile), name)

    rootfs = None
    if re.search(r"(^|[\s/])rootfs\.tar(\s|$)", dockerfile, re.MULTILINE):
        say(f"making the root filesystem for {', '.join(plugin.manifest.dependencies) or name}")
        rootfs = build_rootfs(plugin.manifest.dependencies, cache_dir=cache_dir, force=force)
        say(
            f"root filesystem: {len(rootfs.packages)} packages, "
            f"{rootfs.size_bytes / 1e6:.0f} MB{' (cached)' if rootfs.cached else ''}"
        )
    labels = _labels(plugin, rootfs)
    previous = _find_image(client, tag)

    def result(image: Any, up_to_date: bool) -> ImageBuildResult:
        return ImageBuildResult(
            plugin=name,
            version=plugin.manifest.version,
            tag=tag,
            image_id=str(image.id),
            size_bytes=int(image.attrs.get("Size") or 0),
            seconds=round(time.perf_counter() - started, 3),
            up_to_date=up_to_date,
            rootfs=rootfs,
        )

    if previous is not None and not force and labels.items() <= (previous.labels or {}).items():
        return result(previous, up_to_date=True)

    say(f"building {tag}")
    context = ContextStream(files.contents, rootfs.path if rootfs else None)
    try:
        image, _ = client.images.build(
            fileobj=cast(IO[bytes], context),
            custom_context=True,
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            network_mode="none",
            labels=labels,
            timeout=BUILD_TIMEOUT,
        )
    except BuildError as exc:
        raise ImageBuildError(
            f"plugin '{name}': building {tag} failed: {' '.join(str(exc.msg).split())}",
            hint=f"the engine's last lines: {_log_tail(exc.build_log)}",
        ) from None
    except APIError as exc:
        raise EngineRefusedError(
            f"the engine refused to build {tag} for plugin '{name}': {_explanation(exc)}"
        ) from None
    except (DockerException, RequestException) as exc:
        raise DockerUnavailableError(
            f"the engine stopped answering while building {tag}: {' '.join(str(exc).split())}"
        ) from None
    finally:
        context.close()
    if previous is not None and previous.id != image.id:
        _remove_untagged(client, str(previous.id))
    return result(image, up_to_date=False)


def _remove_untagged(client: docker.DockerClient, image_id: str) -> None:
    """The image the new build replaced, unless something still uses or names it."""
    try:
        client.images.remove(image_id, noprune=False)
    except APIError as exc:
        log.debug("kept the previous image %s: %s", image_id, _explanation(exc))


def image_status(plugin: VerifiedPlugin, client: docker.DockerClient) -> ImageStatus:
    """Whether the engine has the plugin's image, and whether it was built from these files."""
    tag = plugin.manifest.container_image
    image = _find_image(client, tag) if tag else None
    labels = (image.labels or {}) if image is not None else {}
    return ImageStatus(
        plugin=plugin.name,
        version=plugin.manifest.version,
        image=tag,
        has_dockerfile=(plugin.path / DOCKERFILE_NAME).is_file(),
        present=image is not None,
        up_to_date=None if image is None else labels.get(LABEL_CONTENT) == plugin.content_digest,
        image_id=None if image is None else str(image.id),
        size_bytes=None if image is None else int(image.attrs.get("Size") or 0),
    )
