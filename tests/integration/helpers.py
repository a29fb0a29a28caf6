"""Helpers for integration tests: names, trees, and independent checks with boto3."""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path
from typing import Any

_names = itertools.count()


def s3_client(endpoint: str, access_key: str, secret_key: str, **config: Any) -> Any:
    """A plain boto3 client, to check what landed on a server independently of qbucket."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            **config,
        ),
    )


def unique_name(stem: str = "test") -> str:
    return f"{stem}-{os.getpid()}-{next(_names)}"


def drop_bucket(s3: Any, name: str) -> None:
    """Delete a bucket and its objects with boto3, ignoring a bucket that is already gone."""
    with contextlib.suppress(Exception):
        paginator = s3.get_paginator("list_objects_v2")
        keys = [
            o["Key"] for page in paginator.paginate(Bucket=name) for o in page.get("Contents", [])
        ]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            s3.delete_objects(Bucket=name, Delete={"Objects": batch})
        s3.delete_bucket(Bucket=name)


def remote_objects(s3: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    """key -> content of every object under prefix, read with boto3."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def bucket_exists(s3: Any, name: str) -> bool:
    return any(b["Name"] == name for b in s3.list_buckets().get("Buckets", []))


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Write {relative path: content} below root; returns root."""
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root
