"""Bucket: the seed API (``qarnot.bucket.Bucket``), thin over the modules that do the work."""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from . import _transfer
from ._bucket_sync import SyncMethods
from ._error_mapping import mapped_errors, translate
from ._exceptions import (
    BatchError,
    InvalidKeyError,
    LocalFileNotFoundError,
    LocalPathError,
    MissingBucketException,
    MissingKeyError,
    QBucketError,
)
from ._hashing import digest_bytes
from ._keys import (
    key_to_relative_path,
    normalize_key,
    normalize_prefix,
    validate_bucket_name,
)
from ._objects import ObjectSummary
from ._progress import ProgressCallback, make_sink
from ._scan import check_directory, walk_files

if TYPE_CHECKING:
    from ._background import BackgroundUploads
    from ._connection import Connection
    from ._transport import Transport

Progress = bool | ProgressCallback | None
PROBE_PREFIX = ".qbucket-existence-probe"
_QUEUE_LOCK = threading.Lock()  # one background queue per Bucket object, however many threads


class Bucket(SyncMethods):
    """A bucket on an S3 server: files in, files out, and directories kept in sync.

    Args:
        connection: the server.
        name: the bucket name.
        create: create the bucket if it does not exist. With ``create=False`` every operation on
            a missing bucket raises :class:`MissingBucketException`.

    Paths given as ``remote`` arguments must be valid unix-like relative paths; a leading ``/``
    and doubled slashes are forgiven, ``.`` and ``..`` segments are refused.

    Uploads by :meth:`add_file`, :meth:`add_directory` and ``bucket[remote] = local`` run in the
    background: :meth:`flush` (or leaving a ``with`` block) waits for them and reports every
    failure. Every other operation first waits for the uploads already started, so it sees them.

    Syncs and other many-file transfers (:meth:`sync_directory`, :meth:`sync_to_directory`,
    :meth:`put_files`, :meth:`get_directory`...) come from :class:`SyncMethods`.
    """

    def __init__(self, connection: Connection, name: str, create: bool = True) -> None:
        self._setup(connection, validate_bucket_name(name))
        if create:
            if not self.exists():
                self._connection._create_bucket_on_server(self._name)
            self._known_to_exist = True

    def _setup(self, connection: Connection, name: str) -> None:
        self._connection = connection
        self._name = name
        self._known_to_exist = False
        self._upload_queue: BackgroundUploads | None = None

    @classmethod
    def _listed(cls, connection: Connection, name: str) -> Bucket:
        """A bucket the server listed: its name is taken as it is, even one that today's naming
        rules refuse (AWS once allowed uppercase letters and underscores)."""
        bucket = cls.__new__(cls)
        bucket._setup(connection, name)
        bucket._known_to_exist = True
        return bucket

    # -- identity ---------------------------------------------------------------------------

    @property
    def uuid(self) -> str:
        """Bucket identifier (its name)."""
        return self._name

    @property
    def description(self) -> str:
        """Bucket identifier (its name)."""
        return self._name

    @property
    def name(self) -> str:
        return self._name

    @property
    def connection(self) -> Connection:
        return self._connection

    def __repr__(self) -> str:
        return f"<qbucket.Bucket {self._name!r} on {self._connection!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bucket):
            return NotImplemented
        return self._name == other._name and self._endpoint_id() == other._endpoint_id()

    def __hash__(self) -> int:
        return hash((self._name, self._endpoint_id()))

    def _endpoint_id(self) -> str | None:
        return self._connection.settings.storage_url  # None = the embedded server

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def _transport(self) -> Transport:
        return self._connection.transport

    def _run(self, coro: Any) -> Any:
        return self._transport.run(coro)

    def exists(self) -> bool:
        """True if the bucket exists on the server (one small LIST request)."""
        found = self._first_object(PROBE_PREFIX) is not False
        self._known_to_exist = found
        return found

    def is_empty(self) -> bool:
        """True if the bucket holds no object (one small LIST request).

        Raises:
            MissingBucketException: the bucket does not exist.
        """
        self._settle()
        first = self._first_object("")
        if first is False:
            raise self._missing()
        return first is None

    def _first_object(self, prefix: str) -> ObjectSummary | Literal[False] | None:
        """The first object under ``prefix``, None if there is none, False if the bucket is
        missing."""
        lister = self._transport.lister()
        try:
            return lister.first(self._name, prefix)
        except Exception as exc:
            error = translate(exc, action="check", bucket=self._name)
            if isinstance(error, MissingBucketException):
                return False
            raise error from exc
        finally:
            lister.close()

    def _require_bucket(self) -> None:
        """Raise MissingBucketException unless the bucket is known to exist.

        Needed before writes: stock SeaweedFS silently re-creates a missing bucket on PUT.
        """
        if not self._known_to_exist and not self.exists():
            raise self._missing()

    def _missing(self, key: str | None = None) -> MissingBucketException:
        return MissingBucketException(
            f"bucket {self._name!r} does not exist", bucket=self._name, key=key
        )

    @property
    def _uploads(self) -> BackgroundUploads:
        """The queue of background uploads, made by the first one: its module (and asyncio, for
        the transfers) is imported only by programs that upload in the background."""
        with _QUEUE_LOCK:
            if self._upload_queue is None:
                from ._background import BackgroundUploads

                self._upload_queue = BackgroundUploads(
                    lambda: self._connection.transport, self._name
                )
                self._connection._register(self._upload_queue)
            return self._upload_queue

    def _settle(self) -> None:
        """Reads see earlier writes: wait for the background uploads started so far."""
        if self._upload_queue is not None:
            self._upload_queue.wait()

    def _missing_key_or_bucket(self, error: QBucketError) -> QBucketError:
        """A 404 on an object may mean the bucket is gone (SeaweedFS answers HEAD with a bare 404)."""
        if isinstance(error, MissingKeyError) and not self.exists():
            return self._missing(error.key)
        return error

    # -- the bucket itself ------------------------------------------------------------------

    def delete(self) -> None:
        """Delete the bucket and everything in it (all object versions, if versioned)."""
        self._settle()
        self._require_bucket()
        keys = [summary.key for summary in self.list_files()]
        self._run(_transfer.delete_objects(self._transport, self._name, keys))
        client = self._connection.s3client
        with mapped_errors("delete bucket", bucket=self._name):
            versioning = client.get_bucket_versioning(Bucket=self._name).get("Status")
            if versioning in ("Enabled", "Suspended"):
                paginator = client.get_paginator("list_object_versions")
                for page in paginator.paginate(Bucket=self._name):
                    versions = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
                    if versions:
                        client.delete_objects(
                            Bucket=self._name,
                            Delete={
                                "Objects": [
                                    {"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions
                                ],
                                "Quiet": True,
                            },
                        )
            client.delete_bucket(Bucket=self._name)
        self._known_to_exist = False

    # -- listing ----------------------------------------------------------------------------

    def list_files(self) -> list[ObjectSummary]:
        """Every object in the bucket.

        Raises:
            MissingBucketException: the bucket does not exist.
        """
        return self._list("")

    def directory(self, directory: str = "") -> list[ObjectSummary]:
        """The objects whose key starts with ``directory`` (a plain S3 prefix)."""
        if not isinstance(directory, str):
            raise InvalidKeyError(f"directory must be a str, not {type(directory).__name__}")
        return self._list(directory.lstrip("/"))

    def _list(self, prefix: str) -> list[ObjectSummary]:
        # Listed on the calling thread: a listing never needs the transfer loop (nor asyncio).
        self._settle()
        lister = self._transport.lister()
        try:
            with mapped_errors("list", bucket=self._name, key=prefix or None):
                found = [summary for page in lister.pages(self._name, prefix) for summary in page]
        finally:
            lister.close()
        self._known_to_exist = True
        return found

    def _list_level(self, prefix: str) -> tuple[list[str], list[ObjectSummary]]:
        """One level below ``prefix``, as a "/"-delimited listing gives it: the common prefixes
        (``prefix + name + "/"``) and the objects beside them. What ``qbucket ls`` shows."""
        from ._listing import summary

        self._settle()
        lister = self._transport.lister()
        prefixes: list[str] = []
        objects: list[ObjectSummary] = []
        try:
            with mapped_errors("list", bucket=self._name, key=prefix or None):
                for page in lister.listing(self._name, prefix, delimiter="/"):
                    prefixes += page.prefixes
                    objects += [summary(self._name, listed) for listed in page.objects]
        finally:
            lister.close()
        self._known_to_exist = True
        return prefixes, objects

    def __iter__(self) -> Iterator[ObjectSummary]:
        return iter(self.list_files())

    def __contains__(self, item: object) -> bool:
        key = getattr(item, "key", item)
        if not isinstance(key, str):
            return False
        try:
            key = normalize_key(key, bucket=self._name, allow_control=True)
        except InvalidKeyError:
            return False
        self._settle()
        first = self._first_object(key)
        if first is False:
            raise self._missing()
        return first is not None and first.key == key

    # -- uploads ----------------------------------------------------------------------------

    def add_file(
        self, local_or_file: str | os.PathLike[str] | BinaryIO, remote: str | None = None
    ) -> None:
        """Upload a local file, or the rest of an open binary file object, in the background.

        Args:
            local_or_file: a path, or a file object opened in binary mode (read completely
                before this returns).
            remote: the key (default: the path as given, or the file object's base name).

        Raises:
            LocalFileNotFoundError: no such file. Other upload errors surface in :meth:`flush`.
        """
        if isinstance(local_or_file, (str, os.PathLike)):
            path = os.fspath(local_or_file)
            key = self._key_for_path(path, remote)
            self._check_file(path, key)
            self._require_bucket()
            self._uploads.submit(
                key, lambda: _transfer.put_file(self._transport, self._name, key, path)
            )
            return
        data, key = self._read_file_object(local_or_file, remote)
        self._require_bucket()
        digests = digest_bytes(data)
        self._uploads.submit(
            key, lambda: _transfer.put_bytes(self._transport, self._name, key, data, digests)
        )

    def _key_for_path(self, path: str, remote: str | None) -> str:
        if remote is not None:
            return normalize_key(remote, bucket=self._name)
        try:
            return normalize_key(path, bucket=self._name)
        except InvalidKeyError as exc:
            raise InvalidKeyError(
                f"{exc}; the key defaults to the path {path!r}: pass remote= to name the object",
                bucket=self._name,
                key=exc.key,
                path=path,
            ) from None

    def _check_file(self, path: str, key: str) -> None:
        if not os.path.exists(path):
            raise LocalFileNotFoundError(
                f"cannot upload {path} to s3://{self._name}/{key}: no such file",
                bucket=self._name,
                key=key,
                path=path,
            )
        if os.path.isdir(path):
            raise LocalPathError(
                f"cannot upload {path}: it is a directory (use add_directory)",
                bucket=self._name,
                key=key,
                path=path,
            )

    def _read_file_object(self, stream: Any, remote: str | None) -> tuple[bytes, str]:
        name = getattr(stream, "name", None)
        if remote is None:
            if not isinstance(name, str) or not name:
                raise InvalidKeyError(
                    "remote is required for a file object without a name", bucket=self._name
                )
            remote = os.path.basename(name)
        key = normalize_key(remote, bucket=self._name)
        if not hasattr(stream, "read"):
            raise TypeError(
                f"add_file takes a path or a binary file object, not {type(stream).__name__}"
            )
        text_mode = f"file object for s3://{self._name}/{key} is in text mode; open it with 'rb'"
        if isinstance(stream, io.TextIOBase):
            raise TypeError(text_mode)
        with mapped_errors(
            "read", bucket=self._name, key=key, path=name if isinstance(name, str) else None
        ):
            data = stream.read()
        if isinstance(data, str):
            raise TypeError(text_mode)
        return bytes(data), key

    def add_directory(self, local: str | os.PathLike[str], remote: str | None = "") -> None:
        """Upload every file below ``local``, hierarchy kept, in the background.

        Symlinks (to files or directories) are skipped, never followed.

        Args:
            local: the local directory.
            remote: the key prefix to put it under (default: the bucket's root).

        Raises:
            LocalFileNotFoundError: ``local`` does not exist (an ``IOError``).
            LocalNotADirectoryError: ``local`` is not a directory (an ``IOError``).
        """
        root = check_directory(local)
        prefix = normalize_prefix(remote, bucket=self._name)
        self._require_bucket()
        for found in walk_files(root):
            self.add_file(found.path, prefix + found.relative)

    def __setitem__(self, remote: str, local: str | os.PathLike[str] | BinaryIO) -> None:
        if isinstance(local, (str, os.PathLike)) and os.path.isdir(local):
            self.add_directory(local, remote)
        else:
            self.add_file(local, remote)

    def flush(self) -> None:
        """Wait for every background upload.

        Raises:
            BatchError: one or more uploads failed; ``failures`` has each error, with its key.
        """
        if self._upload_queue is not None:
            self._upload_queue.flush()

    def update(self, flush: bool = False) -> None:
        """Refresh what is known of the bucket from the server.

        Args:
            flush: first wait for the background uploads (and raise their failures).

        Raises:
            MissingBucketException: the bucket no longer exists.
        """
        if flush:
            self.flush()
        else:
            self._settle()
        self._known_to_exist = False
        self._require_bucket()

    # -- downloads --------------------------------------------------------------------------

    def get_file(
        self, remote: str, local: str | os.PathLike[str] | None = None, progress: Progress = None
    ) -> str:
        """Download one object; creates the needed directories.

        Args:
            remote: the key.
            local: where to write it (default: the key, as a path relative to the current
                directory). An existing directory receives the file under the key's base name.
            progress: a callback ``(read, total, filename)``, or True for a progress bar.

        Returns:
            The path of the written file.

        Raises:
            MissingKeyError: no such key (a ``ValueError``).
            UnsafeKeyError: ``local`` is not given and the key is not a safe relative path.
        """
        self._settle()
        key = normalize_key(remote, bucket=self._name, allow_control=True)
        if local is None:
            destination = Path(*key_to_relative_path(key, bucket=self._name).parts)
        else:
            destination = Path(local)
            if destination.is_dir():
                destination = destination / key.rsplit("/", 1)[-1]
        with mapped_errors(
            "create directory for", bucket=self._name, key=key, path=str(destination.parent)
        ):
            destination.parent.mkdir(parents=True, exist_ok=True)
        sink = make_sink(progress, f"s3://{self._name}/{key}")
        from ._download import download  # the download machinery: only for programs that use it

        try:
            self._run(
                self._transport.bounded(
                    download(self._transport, self._name, key, destination, sink)
                )
            )
        except QBucketError as exc:
            raise self._missing_key_or_bucket(exc) from exc
        finally:
            sink.close()
        return str(destination)

    def __getitem__(self, remote: str) -> str:
        return self.get_file(remote)

    def get_all_files(
        self, output_dir: str | os.PathLike[str], progress: Progress = None
    ) -> list[str]:
        """Download every object of the bucket below ``output_dir``, keys as relative paths.

        Existing files of the same names are replaced. Keys that would land outside
        ``output_dir`` (``../x``, ``/etc/x``...) are refused, each with its own error, and the
        other objects are still downloaded; ``dir/`` markers are skipped.

        Returns:
            The paths written.

        Raises:
            MissingBucketException: the bucket does not exist.
            BatchError: some objects could not be downloaded; the others were.
        """
        summaries = self.list_files()
        root = Path(output_dir)
        with mapped_errors("create directory", bucket=self._name, path=str(root)):
            root.mkdir(parents=True, exist_ok=True)
        sink = make_sink(progress, f"s3://{self._name}")
        from ._download_batch import download_all

        try:
            written, failures = download_all(self._transport, self._name, summaries, root, sink)
        finally:
            sink.close()
        if failures:
            raise BatchError(
                f"{len(failures)} of {len(summaries)} object(s) of bucket {self._name!r} were not "
                f"downloaded to {root}",
                failures,
                bucket=self._name,
            )
        return written

    # -- copy and delete --------------------------------------------------------------------

    def copy_file(self, source: str, dest: str) -> None:
        """Server-side copy of ``source`` to ``dest`` (no data goes through this machine).

        Raises:
            MissingKeyError: ``source`` does not exist.
        """
        self._settle()
        source_key = normalize_key(source, bucket=self._name, allow_control=True)
        dest_key = normalize_key(dest, bucket=self._name)
        self._require_bucket()
        try:
            self._run(_transfer.copy_object(self._transport, self._name, source_key, dest_key))
        except MissingKeyError as exc:
            raise self._missing_key_or_bucket(
                MissingKeyError(
                    f"cannot copy: no such key s3://{self._name}/{source_key}",
                    bucket=self._name,
                    key=source_key,
                )
            ) from exc

    def delete_files(self, remotes: Iterable[str]) -> int:
        """Delete many objects, a thousand per request; missing keys are no error.

        Returns:
            How many keys were given.
        """
        self._settle()
        keys = [normalize_key(key, bucket=self._name, allow_control=True) for key in remotes]
        self._require_bucket()
        self._run(_transfer.delete_objects(self._transport, self._name, keys))
        return len(keys)

    def delete_file(self, remote: str) -> None:
        """Delete one object. Deleting a key that does not exist is not an error."""
        self._settle()
        key = normalize_key(remote, bucket=self._name, allow_control=True)
        self._require_bucket()
        self._run(_transfer.delete_objects(self._transport, self._name, [key]))

    def __delitem__(self, remote: str) -> None:
        if remote not in self:
            raise MissingKeyError(
                f"no such key s3://{self._name}/{remote}", bucket=self._name, key=remote
            )
        self.delete_file(remote)

    # -- context manager --------------------------------------------------------------------

    def __enter__(self) -> Bucket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.flush()
            return
        with contextlib.suppress(QBucketError):  # the body's own error is the one to see
            self.flush()
