"""How the obstore stores are configured (no server needed: a store connects lazily)."""

from __future__ import annotations

import pytest

from qbucket._transport import Transport, signs_payload


@pytest.mark.parametrize(
    ("endpoint", "skipped"),
    [("http://127.0.0.1:8333", "true"), ("https://s3.example.com", "false")],
)
def test_certificates_are_verified_on_https_and_not_loaded_for_plain_http(
    endpoint: str, skipped: str
) -> None:
    # Loading the system CA store costs ~9 ms a store; plain HTTP never uses it, and an
    # https:// endpoint must keep full verification.
    store = Transport(endpoint, "key", "secret", "us-east-1").store("bucket")
    assert store.client_options["allow_invalid_certificates"] == skipped
    assert store.client_options["allow_http"] == ("true" if skipped == "true" else "false")


@pytest.mark.parametrize(
    ("endpoint", "signed"),
    [
        ("http://127.0.0.1:8333", False),
        ("http://127.8.9.10:8333", False),
        ("http://[::1]:8333", False),
        ("http://localhost:9000", False),
        ("https://s3.example.com", False),
        ("https://10.0.0.5:9000", False),
        ("http://10.0.0.5:9000", True),
        ("http://minio.lan:9000", True),
        ("http://localhost.example.com", True),
    ],
)
def test_bodies_are_signed_only_over_plain_http_to_another_machine(
    endpoint: str, signed: bool
) -> None:
    # TLS and loopback protect a body in transit; elsewhere its SHA-256 in the signature does.
    assert signs_payload(endpoint) is signed
    store = Transport(endpoint, "key", "secret", "us-east-1").store("bucket")
    assert store.config["unsigned_payload"] == ("false" if signed else "true")
