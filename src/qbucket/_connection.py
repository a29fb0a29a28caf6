"""Connection: one S3 endpoint with its credentials, and the buckets on it."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._config import Settings, resolve
from ._error_mapping import mapped_errors
from ._exceptions import BatchError, MissingBucketException, QBucketError
from ._keys import validate_bucket_name
from ._transport import Transport

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client, S3ServiceResource

    from ._background import BackgroundUploads
    from ._bucket import Bucket


class Connection:
    """An S3 endpoint and its credentials; the factory of :class:`Bucket` objects.

    Settings come from the arguments, then the environment, then the config file, and with no
    storage URL anywhere from the embedded SeaweedFS server, started on first use (see
    :mod:`qbucket._config`). The secret key is never shown by ``repr()`` or in any error.

    Args:
        storage_url: ``http(s)://host:port`` of an S3 server.
        access_key: the access key id.
        secret_key: the secret access key.
        fileconf: a TOML config file, or a mapping with the same keys.
        region: the signing region (default ``us-east-1``).
        profile: a ``[profiles.NAME]`` table of the config file.
        concurrency: the most requests in flight at once for transfers (default: 64).

    Raises:
        ConfigurationError: the settings are incomplete or malformed.
    """

    def __init__(
        self,
        storage_url: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        fileconf: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        region: str | None = None,
        profile: str | None = None,
        concurrency: int | None = None,
    ) -> None:
        if concurrency is not None and concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self._concurrency = concurrency
        self._settings: Settings = resolve(
            storage_url,
            access_key,
            secret_key,
            fileconf=fileconf,
            region=region,
            profile=profile,
        )
        self._transport: Transport | None = None
        self._lock = threading.Lock()
        # By identity, not Bucket equality: two Bucket objects for one bucket each have their
        # own queue, and a queue with uploads in flight stays alive (its futures hold it) even
        # when the caller has dropped the Bucket, so close() still waits for it.
        self._upload_queues: weakref.WeakSet[BackgroundUploads] = weakref.WeakSet()

    # -- settings -------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The resolved settings, with where each one came from."""
        return self._settings

    @property
    def embedded(self) -> bool:
        """True when this connection uses the embedded SeaweedFS server."""
        return self._settings.embedded

    @property
    def storage_url(self) -> str:
        """The endpoint URL (starts the embedded server if it is the one in use)."""
        return self.transport.endpoint

    def __repr__(self) -> str:
        where = "embedded SeaweedFS" if self.embedded else self._settings.storage_url
        return f"<qbucket.Connection {where} access_key={self._settings.access_key!r}>"

    # -- clients --------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        with self._lock:
            if self._transport is None:
                self._transport = self._open_transport()
            return self._transport

    def _open_transport(self) -> Transport:
        settings = self._settings
        if settings.storage_url is None:
            from ._server import EmbeddedServer

            info = EmbeddedServer().ensure_running()
            return Transport(
                info.endpoint, info.access_key, info.secret_key, info.region, **self._limits()
            )
        assert settings.access_key is not None and settings.secret_key is not None
        return Transport(
            settings.storage_url,
            settings.access_key,
            settings.secret_key,
            settings.region,
            **self._limits(),
        )

    def _limits(self) -> dict[str, int]:
        return {} if self._concurrency is None else {"concurrency": self._concurrency}

    @property
    def s3client(self) -> S3Client:
        """A boto3 S3 client for this endpoint: the escape hatch for what qbucket lacks."""
        return self.transport.s3client

    @property
    def s3resource(self) -> S3ServiceResource:
        """A boto3 S3 resource for this endpoint, as the original SDK exposed."""
        return self.transport.s3resource

    # -- buckets --------------------------------------------------------------------------

    def _register(self, uploads: BackgroundUploads) -> None:
        self._upload_queues.add(uploads)

    def buckets(self) -> list[Bucket]:
        """Every bucket the credentials can see."""
        from ._bucket import Bucket

        with mapped_errors(f"list the buckets at {self.transport.endpoint}"):
            response = self.s3client.list_buckets()
        return [Bucket._listed(self, entry["Name"]) for entry in response.get("Buckets", [])]

    def create_bucket(self, name: str) -> Bucket:
        """The bucket ``name``, created if it does not exist yet."""
        from ._bucket import Bucket

        return Bucket(self, name, create=True)

    def retrieve_bucket(self, name: str) -> Bucket:
        """The existing bucket ``name``.

        Raises:
            MissingBucketException: there is no such bucket.
        """
        from ._bucket import Bucket

        bucket = Bucket(self, name, create=False)
        if not bucket.exists():
            raise MissingBucketException(f"bucket {name!r} does not exist", bucket=name)
        return bucket

    def retrieve_or_create_bucket(self, name: str) -> Bucket:
        """The bucket ``name``, created if needed (same as :meth:`create_bucket`)."""
        return self.create_bucket(name)

    def _create_bucket_on_server(self, name: str) -> None:
        """CreateBucket, tolerating a bucket that already exists and is ours."""
        validate_bucket_name(name)
        client = self.s3client
        with mapped_errors("create bucket", bucket=name):
            try:
                if self._settings.region != "us-east-1":
                    client.create_bucket(
                        Bucket=name,
                        CreateBucketConfiguration={"LocationConstraint": self._settings.region},  # type: ignore[typeddict-item]
                    )
                else:
                    client.create_bucket(Bucket=name)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Wait for the background uploads of every Bucket made from this connection, then
        release the clients.

        Raises:
            BatchError: some background uploads failed, of any bucket (all the others were
                still waited for, and the clients are released anyway).
        """
        try:
            failures: list[QBucketError] = []
            for queue in list(self._upload_queues):
                try:
                    queue.flush()
                except BatchError as exc:
                    failures.extend(exc.failures)
            if failures:
                raise BatchError(f"{len(failures)} background upload(s) failed", failures)
        finally:
            with self._lock:
                transport, self._transport = self._transport, None
            if transport is not None:
                transport.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        with contextlib.suppress(Exception):  # the body's own error is the one to see
            self.close()
