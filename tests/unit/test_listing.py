"""The ListObjectsV2 page parser (no server: pages as SeaweedFS and AWS write them)."""

from __future__ import annotations

import datetime

from qbucket._listing import parse_page
from qbucket._listing_page import Listed, next_token, parse_listing

HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def _page(body: str) -> bytes:
    return (HEAD + f"<ListBucketResult {NS}>{body}</ListBucketResult>").encode()


def test_objects_prefixes_and_token_with_url_encoding() -> None:
    body = _page(
        "<Name>b</Name><Prefix>tree/</Prefix><IsTruncated>true</IsTruncated>"
        "<Contents><Key>tree/a%09b+c%2B.txt</Key><ETag>&#34;0123&#34;</ETag><Size>7</Size>"
        "<LastModified>2026-11-25T18:25:46Z</LastModified></Contents>"
        "<CommonPrefixes><Prefix>tree/d%0A1/</Prefix></CommonPrefixes>"
        "<EncodingType>url</EncodingType><NextContinuationToken>tok==</NextContinuationToken>"
    )
    page = parse_listing(body)
    assert page.objects == [Listed("tree/a\tb c+.txt", 7, '"0123"', "2026-11-25T18:25:46Z")]
    assert page.prefixes == ["tree/d\n1/"]
    assert page.token == "tok=="


def test_last_page_has_no_token_and_plain_keys_stay_as_sent() -> None:
    # Without encoding-type=url (a server that ignores it), '+' and '%' are literal.
    body = _page(
        "<IsTruncated>false</IsTruncated><NextContinuationToken>x</NextContinuationToken>"
        "<Contents><Key>a+b%20c &amp; d</Key><Size>0</Size><ETag>e</ETag></Contents>"
    )
    page = parse_listing(body)
    assert page.token is None
    assert [listed.key for listed in page.objects] == ["a+b%20c & d"]


def test_parse_page_builds_object_summaries_with_dates() -> None:
    body = _page(
        "<EncodingType>url</EncodingType><Contents><Key>k</Key><Size>3</Size><ETag>&quot;e&quot;"
        "</ETag><LastModified>2026-01-02T03:04:05.000Z</LastModified></Contents>"
    )
    (summary,), token = parse_page(body, "bkt")
    assert token is None
    assert (summary.bucket_name, summary.key, summary.size, summary.e_tag) == ("bkt", "k", 3, '"e"')
    assert summary.last_modified == datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def test_the_next_token_is_found_without_parsing_the_page_and_unescaped() -> None:
    body = _page(
        "<IsTruncated>true</IsTruncated><Contents><Key>k</Key></Contents>"
        "<NextContinuationToken>a&amp;b&#61;&lt;</NextContinuationToken>"
    )
    assert next_token(body) == "a&b=<" == parse_listing(body).token


def test_a_last_page_has_nonext_token() -> None:
    assert next_token(_page("<IsTruncated>false</IsTruncated>")) is None
