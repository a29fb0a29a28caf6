"""The sync planner (qbucket._planner): pure decisions from digests and a listing."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qbucket._hashing import Digests, digest_bytes
from qbucket._planner import (
    SAME_AS_LOCAL,
    Copy,
    LocalEntry,
    Plan,
    RemoteEntry,
    Upload,
    plan_sync,
    same_content,
)


def local(key: str, data: bytes) -> LocalEntry:
    return LocalEntry(key, f"/src/{key}", digest_bytes(data))


def remote(
    key: str, data: bytes, *, e_tag: str | None = "md5", sha1: str | None = None
) -> RemoteEntry:
    """A remote object holding ``data``; ``e_tag="md5"`` is the quoted plain MD5 a PUT gives."""
    if e_tag == "md5":
        e_tag = f'"{hashlib.md5(data).hexdigest()}"'
    return RemoteEntry(key, len(data), e_tag, sha1)


def listing(*entries: RemoteEntry) -> dict[str, RemoteEntry]:
    return {entry.key: entry for entry in entries}


MULTIPART = '"0123456789abcdef0123456789abcdef-3"'


# -- same_content ----------------------------------------------------------------------------


def test_same_content_size_mismatch_is_false_without_looking_further() -> None:
    digests = digest_bytes(b"hello")
    # Even a matching ETag/sha1 cannot make a different size the same content.
    entry = RemoteEntry("k", 6, f'"{digests.md5}"', digests.sha1)
    assert same_content(digests, entry) is False


def test_same_content_plain_md5_etag() -> None:
    digests = digest_bytes(b"hello")
    assert same_content(digests, remote("k", b"hello")) is True
    assert same_content(digests, RemoteEntry("k", 5, digests.md5.upper())) is True


def test_same_content_same_size_other_md5_is_unresolved_without_sha1() -> None:
    digests = digest_bytes(b"hello")
    assert same_content(digests, remote("k", b"jello")) is None


def test_same_content_falls_back_to_sha1() -> None:
    digests = digest_bytes(b"hello")
    assert same_content(digests, remote("k", b"jello", sha1=digests.sha1)) is True
    assert same_content(digests, remote("k", b"jello", sha1=digest_bytes(b"jello").sha1)) is False
    assert same_content(digests, remote("k", b"hello", e_tag=MULTIPART)) is None
    assert same_content(digests, remote("k", b"hello", e_tag=None)) is None
    assert same_content(digests, remote("k", b"hello", e_tag=MULTIPART, sha1=digests.sha1)) is True
    # No stored SHA-1 (the executor records ""): not the same, so the file is sent again.
    assert same_content(digests, remote("k", b"hello", e_tag=MULTIPART, sha1="")) is False


# -- plan_sync: single files -----------------------------------------------------------------


def test_new_file_is_uploaded() -> None:
    entry = local("a.txt", b"hello")
    plan = plan_sync([entry], {})
    assert plan.uploads == [Upload("a.txt", "/src/a.txt", entry.digests)]
    assert (plan.copies, plan.deletes, plan.unchanged, plan.unresolved) == ([], [], [], [])
    assert not plan.is_noop
    assert plan.bytes_to_upload == 5


def test_same_size_and_md5_etag_is_unchanged() -> None:
    plan = plan_sync([local("a.txt", b"hello")], listing(remote("a.txt", b"hello")))
    assert plan.unchanged == ["a.txt"]
    assert (plan.uploads, plan.copies, plan.deletes, plan.unresolved) == ([], [], [], [])
    assert plan.is_noop
    assert plan.bytes_to_upload == 0


def test_same_size_other_content_without_sha1_is_unresolved() -> None:
    # No object of this listing shows that the server's ETags are MD5s: a 32-hex ETag that
    # differs may be an encrypted object's (SSE-KMS), so only the stored SHA-1 can tell.
    plan = plan_sync(
        [local("a.txt", b"hello")],
        listing(remote("a.txt", b"jello"), remote("x", b"extra")),
    )
    assert plan.unresolved == ["a.txt"]
    # Nothing is done before the executor has read the stored SHA-1 of a.txt.
    assert (plan.uploads, plan.copies, plan.deletes) == ([], [], [])


def test_md5_mismatch_is_a_change_once_the_listing_proves_md5_etags() -> None:
    a, b = local("a.txt", b"hello"), local("b.txt", b"same")
    plan = plan_sync(
        [a, b],
        listing(remote("a.txt", b"jello"), remote("b.txt", b"same"), remote("x", b"extra")),
    )
    assert plan.unresolved == []  # b.txt's ETag equals its MD5: this server's ETags are MD5s
    assert plan.unchanged == ["b.txt"]
    assert plan.uploads == [Upload("a.txt", "/src/a.txt", a.digests)]
    assert plan.deletes == ["x"]


def test_sha1_match_does_not_prove_md5_etags() -> None:
    import hashlib

    a, b = local("a.txt", b"hello"), local("b.txt", b"same")
    opaque = "f" * 32  # 32 hex digits that are no MD5 of anything here
    plan = plan_sync(
        [a, b],
        listing(
            RemoteEntry("a.txt", 5, f'"{opaque}"'),
            RemoteEntry("b.txt", 4, f'"{opaque}"', sha1=hashlib.sha1(b"same").hexdigest()),
        ),
    )
    assert plan.unresolved == ["a.txt"]


def test_unresolved_then_sha1_differs_is_uploaded() -> None:
    entry = local("a.txt", b"hello")
    remote_entry = remote("a.txt", b"jello", sha1=digest_bytes(b"jello").sha1)
    plan = plan_sync([entry], listing(remote_entry))
    assert plan.unresolved == []
    assert plan.uploads == [Upload("a.txt", "/src/a.txt", entry.digests)]


def test_unresolved_then_sha1_equal_is_unchanged() -> None:
    # An ETag that looks like an MD5 but is not the content's (SSE-KMS, some gateways).
    entry = local("a.txt", b"hello")
    remote_entry = RemoteEntry("a.txt", 5, '"' + "f" * 32 + '"', sha1=entry.digests.sha1)
    plan = plan_sync([entry], listing(remote_entry))
    assert plan.unchanged == ["a.txt"]
    assert plan.is_noop


def test_multipart_etag_with_equal_size_and_no_sha1_is_unresolved() -> None:
    plan = plan_sync([local("big", b"hello")], listing(remote("big", b"hello", e_tag=MULTIPART)))
    assert plan.unresolved == ["big"]
    assert (plan.uploads, plan.copies, plan.deletes, plan.unchanged) == ([], [], [], [])


def test_multipart_etag_resolved_by_sha1() -> None:
    entry = local("big", b"hello")
    same = remote("big", b"hello", e_tag=MULTIPART, sha1=entry.digests.sha1)
    assert plan_sync([entry], listing(same)).unchanged == ["big"]
    other = remote("big", b"hello", e_tag=MULTIPART, sha1="")
    assert plan_sync([entry], listing(other)).uploads == [Upload("big", "/src/big", entry.digests)]


@pytest.mark.parametrize("e_tag", ["md5", MULTIPART, None])
def test_size_change_is_uploaded_without_head(e_tag: str | None) -> None:
    entry = local("a.txt", b"hello world")
    plan = plan_sync([entry], listing(remote("a.txt", b"hello", e_tag=e_tag)))
    assert plan.unresolved == []
    assert plan.uploads == [Upload("a.txt", "/src/a.txt", entry.digests)]


# -- plan_sync: identical contents and copies ------------------------------------------------


def test_identical_contents_are_uploaded_once_then_copied() -> None:
    entries = [local(key, b"same") for key in ("c", "a", "b")] + [local("d", b"other")]
    plan = plan_sync(entries, {})
    digests = digest_bytes(b"same")
    assert plan.uploads == [
        Upload("a", "/src/a", digests),
        Upload("d", "/src/d", digest_bytes(b"other")),
    ]
    assert plan.copies == [
        Copy("a", "b", digests, after_upload=True),
        Copy("a", "c", digests, after_upload=True),
    ]
    assert plan.bytes_to_upload == 4 + 5


def test_content_already_remote_under_another_key_is_copied_not_uploaded() -> None:
    entry = local("new-name", b"payload")
    plan = plan_sync(
        [entry, local("kept", b"payload")],
        listing(remote("kept", b"payload")),
    )
    assert plan.unchanged == ["kept"]
    assert plan.uploads == []
    assert plan.copies == [Copy("kept", "new-name", entry.digests, after_upload=False)]
    assert plan.bytes_to_upload == 0


def test_rename_copies_from_the_old_key_then_deletes_it() -> None:
    entry = local("new", b"payload")
    plan = plan_sync([entry], listing(remote("old", b"payload")))
    assert plan.copies == [Copy("old", "new", entry.digests, after_upload=False)]
    assert plan.uploads == []
    assert plan.deletes == ["old"]


def test_duplicates_of_a_remote_content_copy_from_the_first_copy() -> None:
    plan = plan_sync(
        [local("x1", b"payload"), local("x2", b"payload")],
        listing(remote("old", b"payload")),
    )
    digests = digest_bytes(b"payload")
    assert plan.uploads == []
    assert plan.copies == [
        Copy("old", "x1", digests, after_upload=False),
        Copy("x1", "x2", digests, after_upload=True),
    ]


def test_remote_object_without_plain_md5_is_not_a_copy_source() -> None:
    entry = local("new", b"payload")
    plan = plan_sync([entry], listing(remote("old", b"payload", e_tag=MULTIPART)))
    assert plan.copies == []
    assert plan.uploads == [Upload("new", "/src/new", entry.digests)]


def test_swapped_contents_are_never_copied_from_keys_the_plan_rewrites() -> None:
    # Different sizes: both files are known to have changed from the listing alone.
    a, b = local("a", b"BB"), local("b", b"A")
    plan = plan_sync([a, b], listing(remote("a", b"A"), remote("b", b"BB")))
    assert plan.copies == []
    assert plan.uploads == [Upload("a", "/src/a", a.digests), Upload("b", "/src/b", b.digests)]


def test_swapped_contents_of_equal_size_after_sha1_resolution() -> None:
    a, b = local("a", b"BB"), local("b", b"AA")
    remote_a = remote("a", b"AA")
    remote_b = remote("b", b"BB")
    first = plan_sync([a, b], listing(remote_a, remote_b))
    assert sorted(first.unresolved) == ["a", "b"]
    resolved = listing(
        remote_a._replace(sha1=digest_bytes(b"AA").sha1),
        remote_b._replace(sha1=digest_bytes(b"BB").sha1),
    )
    plan = plan_sync([a, b], resolved)
    assert plan.unresolved == []
    assert plan.copies == []
    assert plan.uploads == [Upload("a", "/src/a", a.digests), Upload("b", "/src/b", b.digests)]


# -- plan_sync: deletes ----------------------------------------------------------------------


def test_remote_extras_are_deleted_in_sorted_order() -> None:
    plan = plan_sync(
        [local("keep", b"k")],
        listing(remote("z", b"1"), remote("keep", b"k"), remote("a/b", b"22"), remote("m", b"")),
    )
    assert plan.deletes == ["a/b", "m", "z"]
    assert plan.unchanged == ["keep"]
    assert not plan.is_noop


def test_no_deletes_without_delete_extras() -> None:
    plan = plan_sync(
        [local("keep", b"k")],
        listing(remote("z", b"1"), remote("keep", b"k")),
        delete_extras=False,
    )
    assert plan.deletes == []
    assert plan.is_noop


def test_empty_local_deletes_everything() -> None:
    plan = plan_sync([], listing(remote("b", b"1"), remote("a", b"2")))
    assert plan.deletes == ["a", "b"]
    assert (plan.uploads, plan.copies) == ([], [])


def test_empty_everything_is_a_noop() -> None:
    plan = plan_sync([], {})
    assert plan == Plan([], [], [], [], [])
    assert plan.is_noop
    assert plan.bytes_to_upload == 0


# -- property --------------------------------------------------------------------------------

CONTENTS = [b"", b"a", b"b", b"ab", b"ba", b"abc"]  # "ab"/"ba": same size, other content
KEYS = ["a", "b", "c", "d", "e", "f"]
ETAG_KINDS = ["md5", "multipart", "none", "opaque"]


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[dict[str, bytes], dict[str, tuple[bytes, str, bool]], bool]:
    local_files = draw(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(CONTENTS)))
    remote_objects = draw(
        st.dictionaries(
            st.sampled_from(KEYS),
            st.tuples(st.sampled_from(CONTENTS), st.sampled_from(ETAG_KINDS), st.booleans()),
        )
    )
    return local_files, remote_objects, draw(st.booleans())


def _remote_entry(key: str, data: bytes, kind: str, listed_sha1: bool) -> RemoteEntry:
    e_tag = {
        "md5": f'"{hashlib.md5(data).hexdigest()}"',
        "multipart": f'"{hashlib.md5(data + b"parts").hexdigest()}-2"',
        "none": None,
        # Looks like an MD5, is not the content's (an encrypted bucket).
        "opaque": f'"{hashlib.md5(b"opaque" + data).hexdigest()}"',
    }[kind]
    return RemoteEntry(key, len(data), e_tag, digest_bytes(data).sha1 if listed_sha1 else None)


@settings(database=None, deadline=None, max_examples=200)
@given(scenarios())
def test_plan_sync_properties(
    scenario: tuple[dict[str, bytes], dict[str, tuple[bytes, str, bool]], bool],
) -> None:
    local_files, remote_objects, delete_extras = scenario
    entries = [local(key, data) for key, data in local_files.items()]
    remote_listing = {
        key: _remote_entry(key, data, kind, sha1)
        for key, (data, kind, sha1) in remote_objects.items()
    }

    plan = plan_sync(entries, remote_listing, delete_extras=delete_extras)
    if plan.unresolved:
        # Nothing is done until the executor has read the stored SHA-1s.
        assert (plan.uploads, plan.copies, plan.deletes) == ([], [], [])
        decided = plan.unchanged + plan.unresolved
        assert len(set(decided)) == len(decided)
        assert set(decided) <= set(local_files)
        for key in plan.unresolved:
            assert key in remote_listing
            assert remote_listing[key].sha1 is None
            assert remote_listing[key].size == len(local_files[key])
            remote_listing[key] = remote_listing[key]._replace(
                sha1=digest_bytes(remote_objects[key][0]).sha1
            )
        plan = plan_sync(entries, remote_listing, delete_extras=delete_extras)
    assert plan.unresolved == []

    # Every local key is unchanged, uploaded or copied, exactly once.
    outcomes = plan.unchanged + [u.key for u in plan.uploads] + [c.key for c in plan.copies]
    assert sorted(outcomes) == sorted(local_files)
    for key in plan.unchanged:
        assert remote_objects[key][0] == local_files[key]
    for upload in plan.uploads:
        assert upload.digests == digest_bytes(local_files[upload.key])
        assert upload.path == f"/src/{upload.key}"
    assert plan.bytes_to_upload == sum(len(local_files[u.key]) for u in plan.uploads)
    # Each content is sent at most once.
    assert len({u.digests.sha1 for u in plan.uploads}) == len(plan.uploads)

    # Deletes: exactly the remote extras, sorted.
    expected_deletes = sorted(set(remote_listing) - set(local_files)) if delete_extras else []
    assert plan.deletes == expected_deletes

    written = {u.key for u in plan.uploads} | {c.key for c in plan.copies}
    first_of_plan = {u.key: u.digests for u in plan.uploads}
    for copy in plan.copies:
        assert copy.digests == digest_bytes(local_files[copy.key])
        if copy.after_upload:
            # Its source is an upload or an earlier remote copy of this plan, of the same content.
            assert copy.source in first_of_plan
            assert first_of_plan[copy.source] == copy.digests
        else:
            # Its source is a remote object this plan leaves alone, holding the same content.
            assert copy.source not in written
            assert copy.source in remote_listing
            assert remote_objects[copy.source][0] == local_files[copy.key]
            first_of_plan[copy.key] = copy.digests

    # A content that some untouched remote object holds (as far as its ETag tells) is not sent.
    for upload in plan.uploads:
        for key, entry in remote_listing.items():
            if key not in written and entry.size == upload.digests.size:
                assert entry.e_tag != f'"{upload.digests.md5}"'

    assert plan.is_noop == (not plan.uploads and not plan.copies and not plan.deletes)


def test_digests_are_real() -> None:
    # The helpers above rely on digest_bytes being the real MD5/SHA-1.
    assert digest_bytes(b"abc") == Digests(
        3, hashlib.md5(b"abc").hexdigest(), hashlib.sha1(b"abc").hexdigest()
    )


@settings(database=None, deadline=None, max_examples=200)
@given(scenarios())
def test_folded_listing_plans_the_same(
    scenario: tuple[dict[str, bytes], dict[str, tuple[bytes, str, bool]], bool],
) -> None:
    # A streamed listing replaces the objects whose MD5 ETag matches the local file by the
    # SAME_AS_LOCAL marker; the plan must not change.
    local_files, remote_objects, delete_extras = scenario
    entries = [local(key, data) for key, data in local_files.items()]
    full = {
        key: _remote_entry(key, data, kind, sha1)
        for key, (data, kind, sha1) in remote_objects.items()
    }
    by_key = {entry.key: entry for entry in entries}
    folded = {
        key: SAME_AS_LOCAL
        if key in by_key
        and item.size == by_key[key].digests.size
        and item.e_tag == f'"{by_key[key].digests.md5}"'
        else item
        for key, item in full.items()
    }
    assert plan_sync(entries, folded, delete_extras=delete_extras) == plan_sync(
        entries, full, delete_extras=delete_extras
    )


def test_unchanged_object_proven_by_its_etag_still_serves_as_copy_source() -> None:
    entries = [local("a", b"same"), local("b", b"same")]
    plan = plan_sync(entries, {"a": SAME_AS_LOCAL})
    assert plan.unchanged == ["a"]
    assert plan.copies == [Copy("a", "b", digest_bytes(b"same"), after_upload=False)]
    assert plan.uploads == []
