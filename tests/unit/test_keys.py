"""Remote keys and the local paths they map to (qbucket._keys)."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qbucket import InvalidBucketNameError, InvalidKeyError, QBucketError, UnsafeKeyError
from qbucket._keys import (
    MAX_KEY_BYTES,
    MAX_NAME_BYTES,
    key_to_relative_path,
    local_path_for_key,
    normalize_key,
    normalize_prefix,
    validate_bucket_name,
)

# -- normalize_key ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("x", "x"),
        ("a/b/c.txt", "a/b/c.txt"),
        ("/x", "x"),
        ("//x", "x"),
        ("/data//x", "data/x"),
        ("a///b", "a/b"),
        ("...", "..."),
        (".hidden", ".hidden"),
        ("a..b/..c", "a..b/..c"),
        ("dir with space/100% #1?.txt", "dir with space/100% #1?.txt"),
        ("café/日本語/🙂", "café/日本語/🙂"),
    ],
)
def test_normalize_key_accepts_and_forgives_leading_and_doubled_slashes(
    key: str, expected: str
) -> None:
    assert normalize_key(key) == expected


@pytest.mark.parametrize("key", [".", "..", "./x", "../x", "a/./b", "a/../b", "a/..", "/../x"])
def test_normalize_key_refuses_dot_segments(key: str) -> None:
    with pytest.raises(InvalidKeyError, match="segment") as info:
        normalize_key(key, bucket="bkt")
    assert info.value.key == key
    assert info.value.bucket == "bkt"
    assert repr(key) in str(info.value)


def test_normalize_key_refuses_nul() -> None:
    with pytest.raises(InvalidKeyError, match="NUL") as info:
        normalize_key("a\x00b")
    assert info.value.key == "a\x00b"


@pytest.mark.parametrize("key", ["dir/", "a/b/", "/", "//"])
def test_normalize_key_refuses_trailing_slash(key: str) -> None:
    with pytest.raises(InvalidKeyError, match="ends with '/'") as info:
        normalize_key(key)
    assert info.value.key == key


def test_normalize_key_refuses_empty() -> None:
    with pytest.raises(InvalidKeyError, match="empty"):
        normalize_key("")


def test_normalize_key_length_limit_is_in_utf8_bytes() -> None:
    assert normalize_key("a" * MAX_KEY_BYTES) == "a" * MAX_KEY_BYTES
    # The forgiven leading slash does not count.
    assert normalize_key("/" + "a" * MAX_KEY_BYTES) == "a" * MAX_KEY_BYTES
    with pytest.raises(InvalidKeyError, match="longer than 1024 bytes"):
        normalize_key("a" * (MAX_KEY_BYTES + 1))
    # 513 two-byte characters: 513 characters but 1026 bytes.
    with pytest.raises(InvalidKeyError, match="longer than 1024 bytes"):
        normalize_key("é" * 513)


@pytest.mark.parametrize("key", [None, 1, b"bytes", Path("x"), ["x"]])
def test_normalize_key_refuses_non_str(key: object) -> None:
    with pytest.raises(InvalidKeyError, match="must be a str") as info:
        normalize_key(key, bucket="bkt")
    assert isinstance(info.value, ValueError)
    assert type(key).__name__ in str(info.value)
    assert info.value.bucket == "bkt"


@settings(database=None, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab./\x00é"), max_size=12))
def test_normalize_key_is_idempotent(key: str) -> None:
    try:
        normalized = normalize_key(key)
    except InvalidKeyError:
        return
    assert normalize_key(normalized) == normalized
    # What normalize_key accepts is always a safe download path too.
    assert key_to_relative_path(normalized).as_posix() == normalized


# -- normalize_prefix ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        (None, ""),
        ("", ""),
        ("/", ""),
        ("//", ""),
        ("data", "data/"),
        ("data/", "data/"),
        ("/data/", "data/"),
        ("a//b///", "a/b/"),
        ("run-1/out", "run-1/out/"),
    ],
)
def test_normalize_prefix(remote: str | None, expected: str) -> None:
    assert normalize_prefix(remote) == expected


def test_normalize_prefix_keeps_the_slash_boundary() -> None:
    prefix = normalize_prefix("data")
    assert "data/x".startswith(prefix)
    assert not "data2/x".startswith(prefix)
    assert not "data".startswith(prefix)


@pytest.mark.parametrize("remote", ["..", "../x", "a/./b", "a\x00"])
def test_normalize_prefix_refuses_invalid_directories(remote: str) -> None:
    with pytest.raises(InvalidKeyError):
        normalize_prefix(remote, bucket="bkt")


# -- key_to_relative_path / local_path_for_key -----------------------------------------------

HOSTILE_KEYS = [
    "",
    "..",
    ".",
    "../x",
    "a/../../x",
    "p/..",
    "x/./y",
    "./x",
    "/etc/x",
    "//x",
    "/",
    "a//b",
    "a/",
    "a\x00b",
    "\x00",
    "a\\b",
    "..\\..\\x",
    "a" * (MAX_NAME_BYTES + 1),
    "dir/" + "a" * (MAX_NAME_BYTES + 1),
    "é" * 128,  # 128 characters, 256 bytes
]


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys_are_refused_with_an_error_naming_the_key(key: str, tmp_path: Path) -> None:
    with pytest.raises(UnsafeKeyError) as info:
        key_to_relative_path(key, bucket="bkt")
    error = info.value
    assert isinstance(error, InvalidKeyError)
    assert isinstance(error, ValueError)
    assert isinstance(error, QBucketError)
    assert error.key == key
    assert error.bucket == "bkt"
    assert repr(key) in str(error)

    with pytest.raises(UnsafeKeyError) as info:
        local_path_for_key(tmp_path, key, bucket="bkt")
    assert info.value.key == key
    assert repr(key) in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing was created


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("../x", "'..' segment"),
        ("x/./y", "'.' segment"),
        ("/etc/x", "absolute"),
        ("//x", "absolute"),
        ("a//b", "empty path segment"),
        ("a\x00b", "NUL"),
        ("a\\b", "backslash"),
        ("a" * 256, "longer than 255 bytes"),
        ("", "empty"),
    ],
)
def test_unsafe_key_messages_say_why(key: str, reason: str) -> None:
    with pytest.raises(UnsafeKeyError) as info:
        key_to_relative_path(key)
    assert reason in str(info.value)


SAFE_KEYS = [
    "x",
    "a/b/c.txt",
    "dir with space/file name.txt",
    "100%/%2e%2e/x",
    "#hash/?query&x=1",
    "...",
    "..a/b..",
    ".hidden/.x",
    "~/x",
    "$HOME/x",
    "日本語/ファイル.txt",
    "🙂/emoji",
    unicodedata.normalize("NFC", "café"),
    unicodedata.normalize("NFD", "café"),
    "a" * MAX_NAME_BYTES,
    "é" * 127,  # 254 bytes
]


@pytest.mark.parametrize("key", SAFE_KEYS)
def test_safe_keys_map_inside_the_root(key: str, tmp_path: Path) -> None:
    relative = key_to_relative_path(key)
    assert relative == PurePosixPath(key)
    assert relative.as_posix() == key
    path = local_path_for_key(tmp_path, key)
    assert path == tmp_path.joinpath(*key.split("/"))
    assert path.resolve().is_relative_to(tmp_path.resolve())
    assert path.resolve() != tmp_path.resolve()
    # The path is really usable below the root.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"data")
    assert path.read_bytes() == b"data"


def test_nfc_and_nfd_names_stay_distinct(tmp_path: Path) -> None:
    nfc = unicodedata.normalize("NFC", "café.txt")
    nfd = unicodedata.normalize("NFD", "café.txt")
    assert nfc != nfd
    nfc_path = local_path_for_key(tmp_path, nfc)
    nfd_path = local_path_for_key(tmp_path, nfd)
    assert nfc_path.name == nfc
    assert nfd_path.name == nfd
    assert nfc_path != nfd_path


_SEGMENTS = st.sampled_from(["", ".", "..", "a", "é", "\\", "\x00", "~", "...", "b c"])
_HOSTILE_LOOKING = st.lists(_SEGMENTS | st.text(max_size=4), max_size=6).map("/".join)


@pytest.fixture(scope="module")
def download_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("download-root") / "target"
    root.mkdir()
    # A sibling that a climbing key would reach.
    (root.parent / "target-sibling").mkdir()
    return root


@settings(database=None, deadline=None, max_examples=300)
@given(key=st.text() | _HOSTILE_LOOKING)
def test_local_path_for_key_never_leaves_the_root(key: str, download_root: Path) -> None:
    try:
        path = local_path_for_key(download_root, key)
    except UnsafeKeyError as error:
        assert error.key == key
        return
    resolved = Path(os.path.realpath(path))
    root = Path(os.path.realpath(download_root))
    assert resolved.is_relative_to(root)
    assert resolved != root
    assert os.path.normpath(path).startswith(os.fspath(download_root) + os.sep)


# -- validate_bucket_name --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "abc",
        "my-bucket",
        "my.bucket.1",
        "1bucket",
        "bucket1",
        "a" * 63,
        "1.2.3",
        "1.2.3.4.5",
        "a-b.c-d",
    ],
)
def test_valid_bucket_names(name: str) -> None:
    assert validate_bucket_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "3 to 63"),
        ("ab", "3 to 63"),
        ("a" * 64, "3 to 63"),
        ("MyBucket", "lowercase"),
        ("my_bucket", "lowercase"),
        ("my bucket", "lowercase"),
        ("bücket", "lowercase"),
        ("-abc", "start and end"),
        ("abc-", "start and end"),
        (".abc", "start and end"),
        ("abc.", "start and end"),
        ("a..b", "'..'"),
        ("192.168.1.1", "IP address"),
        ("10.0.0.255", "IP address"),
    ],
)
def test_invalid_bucket_names(name: str, reason: str) -> None:
    with pytest.raises(InvalidBucketNameError, match="invalid bucket name") as info:
        validate_bucket_name(name)
    assert reason in str(info.value)
    assert info.value.bucket == name
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("name", [None, 123, b"bucket"])
def test_bucket_name_must_be_a_str(name: object) -> None:
    with pytest.raises(InvalidBucketNameError, match="must be a str"):
        validate_bucket_name(name)


def test_control_character_rule_is_exactly_unicode_category_cc() -> None:
    import sys
    import unicodedata

    from qbucket._keys import _has_control_character

    disagreements = [
        code
        for code in range(sys.maxunicode + 1)
        if (unicodedata.category(chr(code)) == "Cc") != _has_control_character(chr(code))
    ]
    assert disagreements == []
