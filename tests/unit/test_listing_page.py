"""The two readers of a ListObjectsV2 page: the regular-expression one for the plain shape every
S3 server writes, ElementTree for anything else. Each page here is read by both; they must agree,
and the fast one must be the one used on plain pages."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ElementTree
from urllib.parse import quote_plus

import pytest

from qbucket._listing_page import Listed, Page, _parse_any, _parse_plain, parse_listing

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def page(
    inner: str, *, declaration: str = DECLARATION, root: str = f"ListBucketResult {NS}"
) -> bytes:
    return (declaration + f"<{root}>{inner}</ListBucketResult>").encode()


def read_plainly(body: bytes) -> Page:
    """The page, read by the fast reader, which must agree with ElementTree."""
    plain = _parse_plain(body)
    assert plain is not None, "the plain reader declined a plain page"
    assert plain == _parse_any(body)
    return plain


def read_by_elementtree(body: bytes) -> Page:
    """The page, which the fast reader must leave to ElementTree."""
    assert _parse_plain(body) is None, "the plain reader took a page it cannot be sure of"
    result = parse_listing(body)
    assert result == _parse_any(body)
    return result


SEAWEEDFS = (
    "<Name>b</Name><Prefix>tree/</Prefix><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>"
    "<Contents><Key>tree/d00/a%20b+c.bin</Key><ETag>&#34;7e9f34&#34;</ETag><Size>4096</Size>"
    "<StorageClass>STANDARD</StorageClass><LastModified>2026-11-27T06:34:36Z</LastModified>"
    "</Contents><Contents><Key>tree/d01/x.bin</Key><ETag>&#34;62-2&#34;</ETag><Size>0</Size>"
    "<StorageClass>STANDARD</StorageClass><LastModified>2026-11-27T06:34:37Z</LastModified>"
    "</Contents><NextContinuationToken>tree/d01/x.bin</NextContinuationToken>"
    "<EncodingType>url</EncodingType><KeyCount>2</KeyCount>"
)

AWS = """
  <Name>b</Name>
  <Prefix></Prefix>
  <KeyCount>2</KeyCount>
  <MaxKeys>1000</MaxKeys>
  <EncodingType>url</EncodingType>
  <IsTruncated>false</IsTruncated>
  <Contents>
    <Key>caf%C3%A9/%E2%9C%93.txt</Key>
    <LastModified>2026-01-02T03:04:05.000Z</LastModified>
    <ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag>
    <ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm>
    <Size>0</Size>
    <Owner><ID>abc</ID><DisplayName>me</DisplayName></Owner>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>folder/</Key>
    <LastModified>2026-01-02T03:04:06.000Z</LastModified>
    <ETag>&quot;x&quot;</ETag>
    <Size>12</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
"""


def test_a_seaweedfs_page_is_read_plainly() -> None:
    result = read_plainly(page(SEAWEEDFS))
    assert result.objects[0] == Listed(
        "tree/d00/a b c.bin", 4096, '"7e9f34"', "2026-11-27T06:34:36Z"
    )
    assert result.token == "tree/d01/x.bin"


def test_an_aws_page_pretty_printed_with_owners_and_checksums_is_read_plainly() -> None:
    result = read_plainly(page(AWS))
    assert [o.key for o in result.objects] == ["café/✓.txt", "folder/"]
    assert result.objects[0].e_tag == '"d41d8cd98f00b204e9800998ecf8427e"'
    assert result.token is None


def test_keys_without_url_encoding_have_their_references_resolved() -> None:
    inner = (
        "<IsTruncated>true</IsTruncated><NextContinuationToken>a&amp;b&#61;</NextContinuationToken>"
        "<Contents><Key>1 &lt; 2 &amp; 3 &gt; 0 &quot;q&quot; &apos;a&apos; tab&#x9;caf&#233;"
        " 100%+1</Key><Size>1</Size><ETag>e</ETag><LastModified>d</LastModified></Contents>"
    )
    result = read_plainly(page(inner))
    assert result.objects[0].key == "1 < 2 & 3 > 0 \"q\" 'a' tab\tcafé 100%+1"
    assert result.token == "a&b="


def test_common_prefixes_of_a_delimiter_listing() -> None:
    inner = (
        "<EncodingType>url</EncodingType><Prefix>p/</Prefix><Delimiter>/</Delimiter>"
        "<CommonPrefixes><Prefix>p/a%2Bb/</Prefix></CommonPrefixes>\n"
        "<CommonPrefixes>\n  <Prefix>p/c/</Prefix>\n</CommonPrefixes>"
        "<Contents><Key>p/top</Key><Size>3</Size><ETag>e</ETag><LastModified>d</LastModified>"
        "</Contents>"
    )
    result = read_plainly(page(inner))
    assert result.prefixes == ["p/a+b/", "p/c/"]
    assert [o.key for o in result.objects] == ["p/top"]


def test_an_empty_page_and_a_page_without_declaration() -> None:
    assert read_plainly(page("<IsTruncated>false</IsTruncated>")) == Page([], [], None)
    assert read_plainly(page(SEAWEEDFS, declaration="")).objects


def test_a_page_without_the_s3_namespace_is_not_read_as_empty() -> None:
    body = page(SEAWEEDFS, root="ListBucketResult")
    assert len(read_plainly(body).objects) == 2
    cdata = page(
        SEAWEEDFS.replace("<Key>tree/d01/x.bin", "<Key><![CDATA[tree/d01/x.bin]]>"),
        root="ListBucketResult",
    )
    assert [o.key for o in read_by_elementtree(cdata).objects] == [
        "tree/d00/a b c.bin",
        "tree/d01/x.bin",
    ]


@pytest.mark.parametrize(
    "inner",
    [
        SEAWEEDFS.replace("<Key>tree/d01/x.bin", "<Key><![CDATA[tree/d01/x.bin]]>"),
        SEAWEEDFS.replace("<Size>0</Size>", "<Size>0</Size><!-- <Key>fake</Key> -->"),
        SEAWEEDFS.replace("<Key>tree/d01/", '<Key xml:space="preserve">tree/d01/'),
        SEAWEEDFS.replace("<ETag>&#34;62-2&#34;</ETag>", "<ETag/>"),
        SEAWEEDFS.replace("<ETag>&#34;62-2&#34;</ETag>", ""),
        SEAWEEDFS.replace("<Size>0</Size>", "<Size>&#48;</Size>"),
        SEAWEEDFS + "<IsTruncated>false</IsTruncated>",
        SEAWEEDFS.replace("x.bin</Key>", "x\r\n.bin</Key>"),
        SEAWEEDFS.replace("<Key>tree/d01/x.bin</Key>", "<Key>tree/<b>d01</b>/x.bin</Key>"),
        SEAWEEDFS.replace(
            "<Prefix>tree/</Prefix>",
            "<CommonPrefixes><Prefix>a</Prefix><Prefix>b</Prefix></CommonPrefixes>",
        ),
    ],
    ids=[
        "cdata",
        "comment",
        "attribute",
        "self-closing",
        "field-missing",
        "reference-in-size",
        "repeated-single",
        "carriage-return",
        "markup-in-text",
        "odd-common-prefixes",
    ],
)
def test_pages_in_any_other_shape_are_left_to_elementtree(inner: str) -> None:
    read_by_elementtree(page(inner))


def test_another_declared_encoding_or_a_byte_order_mark_is_left_to_elementtree() -> None:
    latin = page(
        SEAWEEDFS.replace("x.bin", "\xe9.bin"),
        declaration='<?xml version="1.0" encoding="ISO-8859-1"?>',
    )
    latin = latin.decode("utf-8").encode("latin-1")
    assert read_by_elementtree(latin).objects[1].key == "tree/d01/\xe9.bin"
    read_by_elementtree(b"\xef\xbb\xbf" + page(SEAWEEDFS))


@pytest.mark.parametrize(
    "body",
    [
        page(SEAWEEDFS)[:-5],  # cut short
        page(SEAWEEDFS.replace("x.bin</Key>", "a & b</Key>")),  # a bare ampersand
        page(SEAWEEDFS.replace("x.bin</Key>", "&#1;</Key>")),  # no XML 1.0 character
        page(SEAWEEDFS.replace("x.bin</Key>", "&nbsp;</Key>")),  # no XML entity
    ],
    ids=["cut-short", "bare-ampersand", "control-reference", "html-entity"],
)
def test_a_broken_page_raises_as_elementtree_does(body: bytes) -> None:
    assert _parse_plain(body) is None
    with pytest.raises(ElementTree.ParseError):
        parse_listing(body)


# -- both readers on random pages ----------------------------------------------------------------

ALPHABET = "abcXYZ019 _-./%+&<>\"'\t~é✓😀"


def _escape(text: str, rng: random.Random) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if rng.random() < 0.5:
        text = text.replace('"', "&quot;" if rng.random() < 0.5 else "&#34;")
    return text.replace("\t", "&#x9;") if rng.random() < 0.5 else text


def _random_page(rng: random.Random) -> bytes:
    encoded = rng.random() < 0.7
    gap = rng.choice(["", "\n", "\n  "])

    def text(value: str) -> str:
        return _escape(quote_plus(value, safe="/") if encoded else value, rng)

    parts = [f"<Name>b</Name>{gap}<Prefix>{text('p/')}</Prefix>{gap}"]
    if encoded:
        parts.append(f"<EncodingType>url</EncodingType>{gap}")
    for _ in range(rng.randrange(0, 30)):
        key = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(1, 20)))
        fields = [
            f"<Key>{text(key)}</Key>",
            f"<Size>{rng.randrange(0, 10**12)}</Size>",
            f"<ETag>{_escape(chr(34) + format(rng.getrandbits(128), '032x') + chr(34), rng)}</ETag>",
            f"<LastModified>2026-11-{rng.randrange(10, 28)}T00:00:00.000Z</LastModified>",
            "<StorageClass>STANDARD</StorageClass>",
        ]
        rng.shuffle(fields)
        parts.append(f"<Contents>{gap}{gap.join(fields)}{gap}</Contents>{gap}")
    for _ in range(rng.randrange(0, 4)):
        parts.append(
            f"<CommonPrefixes>{gap}<Prefix>{text('p/' + rng.choice(ALPHABET) + '/')}</Prefix>{gap}</CommonPrefixes>{gap}"
        )
    truncated = rng.random() < 0.5
    parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{gap}")
    if truncated or rng.random() < 0.2:
        parts.append(
            f"<NextContinuationToken>{_escape('t&=/' + str(rng.random()), rng)}</NextContinuationToken>"
        )
    rng.shuffle(parts)
    return page(gap + "".join(parts) + gap)


def test_both_readers_agree_on_random_plain_pages() -> None:
    rng = random.Random(20261127)
    for _ in range(500):
        body = _random_page(rng)
        read_plainly(body)
