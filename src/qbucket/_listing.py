"""Exact, fast bucket listings: ListObjectsV2 signed with SigV4 (pages read by _listing_page).

Why not the clients the rest of qbucket uses:

* obstore turns every listed key into an object_store path, which drops a trailing ``/`` (the
  ``folder/`` markers that consoles create become ``folder``) and rejects keys with control
  characters, failing the whole listing. A sync that deletes extras must see keys exactly.
* boto3 lists exactly, but importing it and building a client costs ~0.4 s and its parser ~0.1 ms
  per key: a no-op sync of a small tree would spend most of its time there.

So the listing is one signed GET per page of 1000 keys, with ``encoding-type=url`` (keys travel
URL-encoded, so any byte sequence survives XML) and the standard SigV4 header signature. Each page
is fetched with :mod:`qbucket._http` on a kept-alive connection, the next one asked for before
a page is parsed; transient failures (resets, 5xx, SlowDown) are retried with exponential backoff.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

from ._error_mapping import HTTPProtocolError, S3ResponseError
from ._http import HTTPConnection
from ._listing_page import Listed, Page, next_token, parse_listing
from ._objects import ObjectSummary

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
PAGE_SIZE = 1000
ATTEMPTS = 5
TIMEOUT_S = 60


def _uri_encode(text: str, *, slash: bool) -> str:
    return quote(text, safe="-_.~" + ("/" if not slash else ""))


def sign_v4(
    method: str,
    host: str,
    path: str,
    query: dict[str, str],
    *,
    region: str,
    access_key: str,
    secret_key: str,
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    """The headers that sign a bodiless S3 request with AWS Signature Version 4.

    ``path`` is the raw (unencoded) path; the canonical form encodes each segment once, as S3
    expects.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    canonical_query = "&".join(
        f"{_uri_encode(k, slash=True)}={_uri_encode(v, slash=True)}"
        for k, v in sorted(query.items())
    )
    headers = {"host": host, "x-amz-content-sha256": EMPTY_SHA256, "x-amz-date": stamp}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            _uri_encode(path, slash=False),
            canonical_query,
            "".join(f"{name}:{headers[name]}\n" for name in sorted(headers)),
            signed,
            EMPTY_SHA256,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "x-amz-content-sha256": EMPTY_SHA256,
        "x-amz-date": stamp,
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, "
            f"Signature={signature}"
        ),
    }


def summary(bucket: str, listed: Listed) -> ObjectSummary:
    """The public summary of a listed object."""
    return ObjectSummary(
        bucket_name=bucket,
        key=listed.key,
        size=listed.size,
        e_tag=listed.e_tag,
        last_modified=datetime.datetime.fromisoformat(listed.last_modified or _EPOCH),
    )


_EPOCH = "1970-01-01T00:00:00Z"


def parse_page(body: bytes, bucket: str) -> tuple[list[ObjectSummary], str | None]:
    """The objects of one ListObjectsV2 page and the continuation token (None on the last)."""
    page = parse_listing(body)
    return [summary(bucket, listed) for listed in page.objects], page.token


def s3_error(status: int, body: bytes) -> S3ResponseError:
    """The error of a non-2xx answer, from S3's XML body when it has one."""
    code, message = str(status), ""
    try:
        root = ElementTree.fromstring(body)
        code = root.findtext("Code") or code
        message = root.findtext("Message") or ""
    except ElementTree.ParseError:
        pass
    return S3ResponseError(status, code, message)


def worth_retrying(error: S3ResponseError) -> bool:
    """Whether an S3 error answer may go away on its own: a 5xx, SlowDown, RequestTimeout."""
    return error.status >= 500 or error.code in ("SlowDown", "RequestTimeout")


def backoff_s(attempt: int) -> float:
    """The pause after failed attempt number ``attempt`` (from 1): 0.1 s, doubling, at most 5."""
    return min(0.1 * (1 << (attempt - 1)), 5.0)


class SignedEndpoint:
    """One S3 endpoint and its credentials, for the requests qbucket signs itself (SigV4,
    path-style addressing): the listing's pages and the large downloads' ranges."""

    def __init__(self, endpoint: str, region: str, access_key: str, secret_key: str) -> None:
        parts = urlsplit(endpoint)
        self._https = parts.scheme == "https"
        self.host = parts.netloc
        self._hostname = parts.hostname or ""
        self._port = parts.port
        self._region = region
        self._access_key = access_key
        self._secret_key = secret_key

    def __repr__(self) -> str:
        return f"SignedEndpoint({self.host!r})"

    def sign(self, method: str, path: str, query: dict[str, str]) -> dict[str, str]:
        """The headers of a bodiless request, Host and signature (see :func:`sign_v4`)."""
        headers = sign_v4(
            method,
            self.host,
            path,
            query,
            region=self._region,
            access_key=self._access_key,
            secret_key=self._secret_key,
        )
        headers["Host"] = self.host  # as signed, the port included
        return headers

    def connection(self, timeout: float) -> HTTPConnection:
        """A new connection to the endpoint (not yet connected)."""
        return HTTPConnection(self._hostname, self._port, https=self._https, timeout=timeout)


class Lister:
    """Lists the objects of a bucket on one endpoint (path-style addressing).

    Not thread-safe: one listing at a time per instance (it keeps one connection).
    """

    def __init__(self, endpoint: str, region: str, access_key: str, secret_key: str) -> None:
        self._endpoint = SignedEndpoint(endpoint, region, access_key, secret_key)
        self._connection: HTTPConnection | None = None
        # Who sent the GET whose answer is on the connection, not read yet (a listing).
        self._unread: object | None = None

    def __repr__(self) -> str:
        return f"Lister({self._endpoint.host!r})"

    def _connect(self) -> HTTPConnection:
        if self._connection is None:
            self._connection = self._endpoint.connection(TIMEOUT_S)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._unread = None

    @staticmethod
    def _target(bucket: str, query: dict[str, str]) -> str:
        return f"/{bucket}?" + "&".join(
            f"{_uri_encode(k, slash=True)}={_uri_encode(v, slash=True)}"
            for k, v in sorted(query.items())
        )

    def _get(self, bucket: str, query: dict[str, str]) -> bytes:
        if self._unread is not None:  # an answer nobody will read is on the connection
            self.close()
        path, target = f"/{bucket}", self._target(bucket, query)
        for attempt in range(1, ATTEMPTS + 1):
            headers = self._endpoint.sign("GET", path, query)
            try:
                connection = self._connect()
                connection.request("GET", target, headers=headers)
                response = connection.getresponse()
                body = response.read()
            except (OSError, HTTPProtocolError):  # timeouts are OSErrors
                self.close()
                if attempt == ATTEMPTS:
                    raise
            else:
                if response.status == 200:
                    return body
                error = s3_error(response.status, body)
                if not worth_retrying(error) or attempt == ATTEMPTS:
                    raise error
            time.sleep(backoff_s(attempt))
        raise AssertionError("unreachable")

    def _send(self, bucket: str, query: dict[str, str], sender: object) -> bool:
        """Send a GET whose answer :meth:`_receive` reads later; False if it could not be sent
        (:meth:`_get` then does it all again, with its retries)."""
        headers = self._endpoint.sign("GET", f"/{bucket}", query)
        try:
            self._connect().request("GET", self._target(bucket, query), headers=headers)
        except (OSError, HTTPProtocolError):
            self.close()
            return False
        self._unread = sender
        return True

    def _receive(self, bucket: str, query: dict[str, str], sender: object) -> bytes:
        """The body answering the GET of ``query`` that ``sender`` sent by :meth:`_send`; if
        that attempt failed, or its answer was dropped since, the GET is done again by
        :meth:`_get`."""
        if self._unread is not sender:
            return self._get(bucket, query)
        try:
            response = self._connect().getresponse()
            body = response.read()
        except (OSError, HTTPProtocolError):
            self.close()
            return self._get(bucket, query)
        finally:
            self._unread = None
        if response.status == 200:
            return body
        error = s3_error(response.status, body)
        if not worth_retrying(error):
            raise error
        return self._get(bucket, query)

    def first(self, bucket: str, prefix: str) -> ObjectSummary | None:
        """The first object (in key order) whose key starts with ``prefix``: one small request.
        Since a key sorts before every longer key it prefixes, ``first(b, k)`` is ``k`` itself
        when it exists."""
        objects, _token = parse_page(
            self._get(
                bucket,
                {"list-type": "2", "encoding-type": "url", "max-keys": "1", "prefix": prefix},
            ),
            bucket,
        )
        return objects[0] if objects else None

    def listing(
        self,
        bucket: str,
        prefix: str = "",
        *,
        delimiter: str | None = None,
        page_size: int = PAGE_SIZE,
        ahead: bool = True,
    ) -> Iterator[Page]:
        """Every page of the objects whose key starts with ``prefix`` (a plain S3 prefix); with
        a ``delimiter``, keys that have it after the prefix are rolled up into common prefixes.

        With ``ahead``, the GET of the next page goes out as soon as a page's body is in, before
        that page is parsed and used: the server works on it meanwhile (~10 ms a page of 1000
        keys, in a chain that cannot otherwise overlap). Pass False when only the first page
        will be read."""

        def query(token: str | None) -> dict[str, str]:
            q = {"list-type": "2", "encoding-type": "url", "max-keys": str(page_size)}
            if prefix:
                q["prefix"] = prefix
            if delimiter:
                q["delimiter"] = delimiter
            if token:
                q["continuation-token"] = token
            return q

        me = object()
        token: str | None = None
        sent = False  # the GET of ``token``'s page is on the wire
        try:
            while True:
                body = (
                    self._receive(bucket, query(token), me)
                    if sent
                    else self._get(bucket, query(token))
                )
                sent = False
                guess = next_token(body) if ahead else None
                if guess is not None:
                    sent = self._send(bucket, query(guess), me)
                page = parse_listing(body)
                if sent and page.token != guess:  # never seen; but then its answer is no use
                    self.close()
                    sent = False
                yield page
                token = page.token
                if token is None:
                    return
        finally:
            if sent and self._unread is me:  # abandoned with the next page on its way: drop
                self.close()

    def pages(
        self, bucket: str, prefix: str = "", *, page_size: int = PAGE_SIZE
    ) -> Iterator[list[ObjectSummary]]:
        """Every object whose key starts with ``prefix`` (a plain S3 prefix), page by page."""
        for page in self.listing(bucket, prefix, page_size=page_size):
            yield [summary(bucket, listed) for listed in page.objects]
