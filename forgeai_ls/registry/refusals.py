"""Why the registry refused an upload, each with its HTTP status.

All of them carry FORGEAI-E306 (publish refused); the status tells a client which kind.
Invalid archives, manifests and signatures keep their own codes (E230, E201, E202, E203)
and are answered with 422.
"""

from __future__ import annotations

from typing import ClassVar

from forgeai_ls.errors import PublishRefusedError


class PublishRefusal(PublishRefusedError):
    """An upload refusal answered with ``STATUS``."""

    STATUS: ClassVar[int] = 400


class EmptyUploadError(PublishRefusal):
    """The request carried no archive."""

    STATUS = 400


class AuthenticationRequiredError(PublishRefusal):
    """No publisher token, or one the registry does not know."""

    STATUS = 401


class PublishForbiddenError(PublishRefusal):
    """The publisher may not publish this name, or signed with a key not registered for it."""

    STATUS = 403


class VersionExistsError(PublishRefusal):
    """The version is already published; published versions never change."""

    STATUS = 409


class UploadTooLargeError(PublishRefusal):
    """The archive is over the registry's size limit."""

    STATUS = 413
