"""The sync planner: local files and a remote listing in, a plan out. Pure: no disk, no network.

Comparison follows the seed API (name, size and SHA-1), without a request per object:

* a size mismatch means the content changed;
* with equal sizes, a plain-MD5 ETag equal to the local MD5 means the content is the same;
* a 32-hex ETag that differs from the local MD5 means a change, once another object of the same
  listing has shown that this server's ETags are MD5s (some servers, AWS with SSE-KMS for one,
  send 32-hex ETags that are not); erring here can only cause an extra upload, never a miss;
* otherwise the object's stored SHA-1 (``x-amz-meta-qbucket-sha1``) decides, and when the listing
  does not carry it the object is *unresolved*: the executor reads its metadata (one HEAD, only
  for such objects) and plans again.

Identical contents are uploaded once: the first file of each content is uploaded, or copied
server-side from a remote object that already holds it and that this plan does not overwrite;
the others are copied from it. Remote objects under the prefix with no local counterpart are
deleted, after every upload and copy succeeded (the executor's rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from ._hashing import Digests, plain_md5_etag


class LocalEntry(NamedTuple):
    """A local file to mirror under ``key``."""

    key: str
    path: str
    digests: Digests


class RemoteEntry(NamedTuple):
    """What a listing (plus, for unresolved objects, a HEAD) says of a remote object."""

    key: str
    size: int
    e_tag: str | None
    sha1: str | None = None


# What a streamed listing keeps of an object that its ETag already proved to hold the local
# file's content (size and MD5): nothing but this marker under the local key. For a no-op sync
# of 100k files the listing then costs a dict slot per object instead of ~250 bytes.
SAME_AS_LOCAL = RemoteEntry("", -1, None)


class Upload(NamedTuple):
    key: str
    path: str
    digests: Digests


class Copy(NamedTuple):
    """A server-side copy. ``after_upload`` is True when the source is written by this plan."""

    source: str
    key: str
    digests: Digests
    after_upload: bool


class Plan(NamedTuple):
    uploads: list[Upload]
    copies: list[Copy]
    deletes: list[str]
    unchanged: list[str]
    unresolved: list[str]

    @property
    def is_noop(self) -> bool:
        return not (self.uploads or self.copies or self.deletes)

    @property
    def bytes_to_upload(self) -> int:
        return sum(upload.digests.size for upload in self.uploads)


def same_content(local: Digests, remote: RemoteEntry) -> bool | None:
    """True/False when the remote object holds/does not hold ``local``; None when only its
    stored SHA-1, not in the listing, can tell."""
    if remote.size != local.size:
        return False
    if plain_md5_etag(remote.e_tag) == local.md5:
        return True
    if remote.sha1 is not None:
        return remote.sha1 == local.sha1
    return None


def _copy_sources(
    changed: list[LocalEntry], remote: Mapping[str, RemoteEntry], proven_same: list[LocalEntry]
) -> dict[tuple[int, str], str]:
    """(size, MD5) -> the first key, in key order, of a remote object that holds that content
    and that the plan leaves alone: a renamed or duplicated file is then copied, not re-sent.
    Only the contents the plan must write are looked for (none in a no-op sync)."""
    needed = {(entry.digests.size, entry.digests.md5) for entry in changed if entry.digests.md5}
    if not needed:
        return {}
    written = {entry.key for entry in changed}
    candidates: list[tuple[str, tuple[int, str]]] = [
        (entry.key, (entry.digests.size, entry.digests.md5)) for entry in proven_same
    ]
    for key, item in remote.items():
        md5 = plain_md5_etag(item.e_tag)
        if item is not SAME_AS_LOCAL and md5 is not None and key not in written:
            candidates.append((key, (item.size, md5)))
    sources: dict[tuple[int, str], str] = {}
    for key, content in sorted(candidates):
        if content in needed:
            sources.setdefault(content, key)
    return sources


def plan_sync(
    local: Iterable[LocalEntry],
    remote: Mapping[str, RemoteEntry],
    *,
    delete_extras: bool = True,
) -> Plan:
    """The operations that make ``remote`` (a listing of the scope) mirror ``local``.

    Args:
        local: the files to mirror, each with its final key.
        remote: the objects currently under the scope, by key.
        delete_extras: plan deletes of remote objects with no local counterpart.
    """
    changed: list[LocalEntry] = []
    unchanged: list[str] = []
    unresolved: list[str] = []
    md5_mismatches: list[LocalEntry] = []  # changed, if this server's ETags are MD5s
    proven_same: list[LocalEntry] = []  # unchanged by their MD5 ETag: candidate copy sources
    etags_are_md5 = False
    wanted: set[str] = set()
    for entry in local:
        wanted.add(entry.key)
        existing = remote.get(entry.key)
        if existing is SAME_AS_LOCAL:
            verdict: bool | None = True
        else:
            verdict = None if existing is None else same_content(entry.digests, existing)
        if existing is None or verdict is False:
            changed.append(entry)
        elif verdict:
            unchanged.append(entry.key)
            if existing is SAME_AS_LOCAL or plain_md5_etag(existing.e_tag) == entry.digests.md5:
                etags_are_md5 = True
                proven_same.append(entry)
        elif entry.digests.md5 and plain_md5_etag(existing.e_tag) is not None:
            md5_mismatches.append(entry)
        else:
            unresolved.append(entry.key)
    if etags_are_md5:
        changed += md5_mismatches
    else:
        unresolved += [entry.key for entry in md5_mismatches]
    if unresolved:
        return Plan([], [], [], unchanged, unresolved)

    remote_by_content = _copy_sources(changed, remote, proven_same)
    uploads: list[Upload] = []
    copies: list[Copy] = []
    first_of_content: dict[str, str] = {}  # sha1 -> key written by this plan
    for entry in sorted(changed, key=lambda e: e.key):
        digests = entry.digests
        source = first_of_content.get(digests.sha1)
        if source is not None:
            copies.append(Copy(source, entry.key, digests, after_upload=True))
            continue
        remote_source = remote_by_content.get((digests.size, digests.md5))
        if remote_source is not None:
            copies.append(Copy(remote_source, entry.key, digests, after_upload=False))
        else:
            uploads.append(Upload(entry.key, entry.path, digests))
        first_of_content[digests.sha1] = entry.key

    deletes = sorted(key for key in remote if key not in wanted) if delete_extras else []
    return Plan(uploads, copies, deletes, unchanged, [])
