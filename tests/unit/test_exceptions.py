"""The exception tree (qbucket._exceptions) and the public namespace of qbucket."""

from __future__ import annotations

import builtins
import copy
import inspect
import pickle
import re

import pytest

import qbucket
from qbucket import _exceptions
from qbucket._exceptions import (
    BatchError,
    BucketNotEmptyError,
    BucketStorageUnavailableException,
    ConfigurationError,
    EmbeddedServerError,
    IncompleteScanError,
    InvalidBucketNameError,
    InvalidKeyError,
    LocalFileNotFoundError,
    LocalNotADirectoryError,
    LocalPathError,
    MissingBucketException,
    MissingKeyError,
    QBucketError,
    TooManyDeletesError,
    TransferError,
    UnauthorizedException,
    UnsafeKeyError,
)

# Every builtin exception class each qbucket error is (besides Exception and BaseException).
BUILTIN_BASES: dict[type[QBucketError], set[type[BaseException]]] = {
    QBucketError: set(),
    ConfigurationError: {ValueError},
    InvalidBucketNameError: {ValueError},
    InvalidKeyError: {ValueError},
    UnsafeKeyError: {ValueError},
    MissingBucketException: {LookupError},
    MissingKeyError: {KeyError, LookupError, ValueError},
    LocalPathError: {OSError},
    LocalFileNotFoundError: {FileNotFoundError, OSError},
    LocalNotADirectoryError: {NotADirectoryError, OSError},
    IncompleteScanError: {OSError},
    BucketStorageUnavailableException: {ConnectionError, OSError},
    UnauthorizedException: {PermissionError, OSError},
    BucketNotEmptyError: set(),
    TransferError: {OSError},
    BatchError: set(),
    TooManyDeletesError: set(),
    EmbeddedServerError: {RuntimeError},
}

QBUCKET_PARENTS: dict[type[QBucketError], type[QBucketError]] = {
    UnsafeKeyError: InvalidKeyError,
    LocalFileNotFoundError: LocalPathError,
    LocalNotADirectoryError: LocalPathError,
    IncompleteScanError: LocalPathError,
}

PUBLIC_ERRORS = [cls for cls in BUILTIN_BASES if cls is not BatchError]


def builtin_bases(cls: type[BaseException]) -> set[type[BaseException]]:
    return {
        base
        for base in cls.__mro__
        if base.__module__ == "builtins" and base not in (Exception, BaseException, object)
    }


def make(cls: type[QBucketError]) -> QBucketError:
    if cls is BatchError:
        return BatchError(
            "2 operations failed",
            [
                MissingKeyError("no key 'a'", bucket="bkt", key="a"),
                TransferError("boom", path="/p"),
            ],
            bucket="bkt",
        )
    return cls("something failed", bucket="bkt", key="some/key", path="/local/path")


# -- the tree --------------------------------------------------------------------------------


def test_every_exception_of_the_module_is_listed_here() -> None:
    defined = {
        obj
        for obj in vars(_exceptions).values()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == _exceptions.__name__
    }
    assert defined == set(BUILTIN_BASES)


@pytest.mark.parametrize("cls", list(BUILTIN_BASES), ids=lambda cls: cls.__name__)
def test_builtin_bases(cls: type[QBucketError]) -> None:
    assert issubclass(cls, QBucketError)
    assert issubclass(cls, Exception)
    assert builtin_bases(cls) == BUILTIN_BASES[cls]
    if cls in QBUCKET_PARENTS:
        assert issubclass(cls, QBUCKET_PARENTS[cls])


def test_named_builtin_relationships() -> None:
    assert issubclass(MissingKeyError, KeyError)
    assert issubclass(MissingKeyError, ValueError)
    assert issubclass(LocalNotADirectoryError, NotADirectoryError)
    assert issubclass(LocalNotADirectoryError, IOError)
    assert issubclass(LocalFileNotFoundError, FileNotFoundError)
    assert issubclass(LocalPathError, IOError)
    assert issubclass(UnauthorizedException, PermissionError)
    assert issubclass(BucketStorageUnavailableException, ConnectionError)
    assert issubclass(InvalidKeyError, ValueError)
    assert issubclass(UnsafeKeyError, InvalidKeyError)
    assert issubclass(InvalidBucketNameError, ValueError)
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(MissingBucketException, LookupError)
    assert issubclass(TransferError, OSError)
    assert issubclass(EmbeddedServerError, RuntimeError)
    assert not issubclass(BucketNotEmptyError, (ValueError, OSError, LookupError, RuntimeError))


def _docstring_tree() -> list[tuple[str, str | None, list[str]]]:
    """(class, parent class, builtin bases) for every line of the module docstring's tree."""
    doc = _exceptions.__doc__ or ""
    lines = doc.splitlines()
    root_line = next(line for line in lines if line.strip() == "QBucketError")
    root_column = root_line.index("QBucketError")
    parents = ["QBucketError"]
    tree: list[tuple[str, str | None, list[str]]] = [("QBucketError", None, [])]
    for line in lines:
        match = re.search(r"[├└]── (\w+)(?: \(([\w, ]+)\))?", line)
        if not match:
            continue
        depth = (match.start() - root_column) // 4 + 1
        del parents[depth:]
        name = match.group(1)
        bases = [base.strip() for base in (match.group(2) or "").split(",") if base.strip()]
        tree.append((name, parents[depth - 1], bases))
        parents.append(name)
    return tree


def test_the_docstring_tree_matches_the_classes() -> None:
    tree = _docstring_tree()
    assert {name for name, _, _ in tree} == {cls.__name__ for cls in BUILTIN_BASES}
    for name, parent, bases in tree:
        cls = getattr(qbucket, name)
        if parent is not None:
            assert issubclass(cls, getattr(qbucket, parent)), (name, parent)
        for base in bases:
            assert issubclass(cls, getattr(builtins, base)), (name, base)
    assert ("UnsafeKeyError", "InvalidKeyError", []) in tree
    assert ("MissingKeyError", "QBucketError", ["KeyError", "ValueError"]) in tree


@pytest.mark.parametrize("cls", PUBLIC_ERRORS, ids=lambda cls: cls.__name__)
def test_caught_by_each_builtin_base(cls: type[QBucketError]) -> None:
    bases: list[type[BaseException]] = [QBucketError, *BUILTIN_BASES[cls]]
    for base in bases:
        with pytest.raises(base):
            raise make(cls)


# -- messages and attributes -----------------------------------------------------------------


@pytest.mark.parametrize("cls", PUBLIC_ERRORS, ids=lambda cls: cls.__name__)
def test_message_and_attributes(cls: type[QBucketError]) -> None:
    error = make(cls)
    assert str(error) == "something failed"
    assert error.message == "something failed"
    assert error.bucket == "bkt"
    assert error.key == "some/key"
    assert error.path == "/local/path"


def test_attributes_default_to_none() -> None:
    error = TransferError("x")
    assert (error.bucket, error.key, error.path) == (None, None, None)


def test_missing_key_error_str_is_the_plain_message() -> None:
    error = MissingKeyError("no object under key 'a/b' in bucket 'bkt'", bucket="bkt", key="a/b")
    assert str(error) == "no object under key 'a/b' in bucket 'bkt'"
    # A plain KeyError would show the repr of its argument.
    assert str(KeyError("x")) == "'x'"
    assert str(MissingKeyError("x")) == "x"
    with pytest.raises(KeyError) as info:
        raise error
    assert str(info.value) == "no object under key 'a/b' in bucket 'bkt'"


def test_batch_error() -> None:
    failures: list[QBucketError] = [
        MissingKeyError("no key 'a'", key="a"),
        TransferError("upload of b failed", bucket="bkt", key="b", path="/src/b"),
        LocalFileNotFoundError("cannot read /src/c", path="/src/c"),
    ]
    error = BatchError("sync failed for 3 file(s)", failures, bucket="bkt")
    assert error.summary == "sync failed for 3 file(s)"
    assert error.failures == failures
    assert error.failures is not failures  # its own list
    assert error.keys == ["a", "b"]
    assert error.bucket == "bkt"
    assert error.key is None
    assert str(error) == (
        "sync failed for 3 file(s)\n  no key 'a'\n  upload of b failed\n  cannot read /src/c"
    )


def test_batch_error_without_failures() -> None:
    error = BatchError("nothing", [])
    assert error.keys == []
    assert str(error) == "nothing"


# -- pickling --------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [0, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("cls", list(BUILTIN_BASES), ids=lambda cls: cls.__name__)
def test_pickle_round_trip(cls: type[QBucketError], protocol: int) -> None:
    error = make(cls)
    clone = pickle.loads(pickle.dumps(error, protocol=protocol))
    assert type(clone) is cls
    assert str(clone) == str(error)
    assert clone.message == error.message
    assert (clone.bucket, clone.key, clone.path) == (error.bucket, error.key, error.path)
    for base in BUILTIN_BASES[cls]:
        assert isinstance(clone, base)


def test_pickle_round_trip_of_batch_error_keeps_failures() -> None:
    error = make(BatchError)
    assert isinstance(error, BatchError)
    clone = pickle.loads(pickle.dumps(error))
    assert isinstance(clone, BatchError)
    assert clone.summary == "2 operations failed"
    assert clone.bucket == "bkt"
    assert clone.keys == ["a"]
    assert [type(failure) for failure in clone.failures] == [MissingKeyError, TransferError]
    assert [str(failure) for failure in clone.failures] == ["no key 'a'", "boom"]
    assert clone.failures[0].bucket == "bkt"
    assert clone.failures[1].path == "/p"
    assert str(clone) == str(error)


def test_copy_keeps_attributes() -> None:
    error = UnsafeKeyError("refusing '../x'", bucket="b", key="../x")
    clone = copy.copy(error)
    assert (type(clone), str(clone), clone.bucket, clone.key) == (
        UnsafeKeyError,
        "refusing '../x'",
        "b",
        "../x",
    )


# -- the public namespace --------------------------------------------------------------------

EXPECTED_ALL = {
    "BatchError",
    "Bucket",
    "BucketNotEmptyError",
    "BucketStorageUnavailableException",
    "ConfigurationError",
    "Connection",
    "EmbeddedServerError",
    "IncompleteScanError",
    "InvalidBucketNameError",
    "InvalidKeyError",
    "LocalFileNotFoundError",
    "LocalNotADirectoryError",
    "LocalPathError",
    "MissingBucketException",
    "MissingKeyError",
    "ObjectSummary",
    "QBucketError",
    "SyncSummary",
    "TooManyDeletesError",
    "TransferError",
    "UnauthorizedException",
    "UnsafeKeyError",
    "__version__",
}


def test_all_is_the_expected_set() -> None:
    assert set(qbucket.__all__) == EXPECTED_ALL
    assert len(qbucket.__all__) == len(EXPECTED_ALL)  # no duplicates


def test_all_is_sorted() -> None:
    assert list(qbucket.__all__) == sorted(qbucket.__all__)


def test_every_name_in_all_is_importable() -> None:
    # What ``from qbucket import <every name>`` does.
    module = __import__("qbucket", fromlist=list(qbucket.__all__))
    for name in qbucket.__all__:
        assert hasattr(module, name), name
        assert getattr(module, name) is not None
    assert isinstance(qbucket.__version__, str)


def test_every_public_exception_is_exported() -> None:
    exported = {
        name
        for name in qbucket.__all__
        if inspect.isclass(getattr(qbucket, name))
        and issubclass(getattr(qbucket, name), BaseException)
    }
    assert exported == {cls.__name__ for cls in BUILTIN_BASES}
    for name in exported:
        assert issubclass(getattr(qbucket, name), QBucketError)
