"""How the obstore stores are configured (no server needed: a store connects lazily)."""

from __future__ import annotations

import pytest

from qbucket._transport import Transport


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
