"""Reading one ListObjectsV2 page: its objects, common prefixes and continuation token.

Every S3 server we know writes pages in one plain shape: elements without attributes or
namespace prefixes, text without CDATA or comments. A page in that shape is read by a few regular
expression scans of the whole body, which find each field of every object at once: ~2 ms for
1000 keys, against ~7 ms for ElementTree and a findtext per field. That is on the critical path
of every sync (the last page is parsed after the server's last answer) and ~0.6 s of client CPU
in a no-op resync of 100k files. A page in any other shape goes to ElementTree, which reads every
shape XML allows; so does a page cut short (it must end with its root's end tag), and one with an
"&" or a character reference XML does not allow, for ElementTree to raise on. The tests hold the
two readers equal on pages of both kinds.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from typing import NamedTuple
from urllib.parse import unquote_plus


class Listed(NamedTuple):
    """One object of a listing page, as cheap as it can be (a sync lists 100k of them)."""

    key: str
    size: int
    e_tag: str
    last_modified: str  # ISO 8601, parsed only when an ObjectSummary is built


class Page(NamedTuple):
    objects: list[Listed]
    prefixes: list[str]  # CommonPrefixes, when the request had a delimiter
    token: str | None  # None on the last page


def parse_listing(body: bytes) -> Page:
    """One ListObjectsV2 page (plain tuples, not ObjectSummary: building those and parsing
    their dates cost 4x the XML parsing, and a sync needs only key, size and ETag).

    Raises:
        xml.etree.ElementTree.ParseError: the body is not well-formed XML.
    """
    return _parse_plain(body) or _parse_any(body)


def _parse_any(body: bytes) -> Page:
    """The page read by ElementTree: any shape XML allows."""
    root = ElementTree.fromstring(body)
    # S3's namespace, or none: a server that leaves it out must not read as an empty bucket.
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    encoded = root.findtext(f"{ns}EncodingType") == "url"
    objects = [
        Listed(
            _decoded(item.findtext(f"{ns}Key") or "", encoded),
            int(item.findtext(f"{ns}Size") or 0),
            item.findtext(f"{ns}ETag") or "",
            item.findtext(f"{ns}LastModified") or "",
        )
        for item in root.iter(f"{ns}Contents")
    ]
    prefixes = [
        _decoded(item.findtext(f"{ns}Prefix") or "", encoded)
        for item in root.iter(f"{ns}CommonPrefixes")
    ]
    truncated = (root.findtext(f"{ns}IsTruncated") or "").lower() == "true"
    token = root.findtext(f"{ns}NextContinuationToken") if truncated else None
    return Page(objects, prefixes, token)


def _field(name: str) -> re.Pattern[str]:
    return re.compile(f"<{name}>([^<]*)</{name}>")


_KEYS = _field("Key")
_SIZES = _field("Size")
_E_TAGS = _field("ETag")
_DATES = _field("LastModified")
_PREFIXES = re.compile(r"<CommonPrefixes>\s*<Prefix>([^<]*)</Prefix>\s*</CommonPrefixes>")
_ENCODING = _field("EncodingType")
_TRUNCATED = _field("IsTruncated")
_TOKEN = _field("NextContinuationToken")
_START = re.compile(r"\s*(?:<\?xml\s([^>]*)\?>)?\s*<ListBucketResult[\s>]")
_DECLARED_ENCODING = re.compile(r"""encoding\s*=\s*["']([^"']*)["']""")
# The five predefined entities and character references; any other "&" is not the plain shape.
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot|apos)|#([0-9]{1,7})|#x([0-9a-fA-F]{1,6}));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


class _NotPlain(Exception):
    """The page is not in the plain shape: ElementTree reads it."""


def _parse_plain(body: bytes) -> Page | None:
    """The page read by regular expressions, or None if it is not in the plain shape."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    start = _START.match(text)
    declared = _DECLARED_ENCODING.search(start.group(1) or "") if start else None
    if (
        start is None
        or (declared is not None and declared.group(1).lower() not in ("utf-8", "utf8"))
        or not text.rstrip().endswith("</ListBucketResult>")
        or "<![CDATA[" in text
        or "<!--" in text
        or "\r" in text  # XML reads a CR LF in text as LF: left to ElementTree
    ):
        return None
    try:
        return _fields(text)
    except (_NotPlain, ValueError):
        return None


def _fields(text: str) -> Page:
    ampersands = text.count("&")
    if ampersands and ampersands == text.count("&#34;") + text.count("&quot;"):
        # The only references are the quotes around ETags (how SeaweedFS and AWS write them):
        # resolved in one pass over the page, not once per field.
        text = text.replace("&#34;", '"').replace("&quot;", '"')
        ampersands = 0
    keys, sizes = _KEYS.findall(text), _SIZES.findall(text)
    e_tags, dates = _E_TAGS.findall(text), _DATES.findall(text)
    count = text.count("<Contents>")
    if not len(keys) == len(sizes) == len(e_tags) == len(dates) == count:
        raise _NotPlain  # a field missing, or out of place: the pairing would be unsure
    prefixes = _PREFIXES.findall(text)
    if len(prefixes) != text.count("<CommonPrefixes>"):
        raise _NotPlain
    encoded = _single(_ENCODING, text) == "url"
    truncated = (_single(_TRUNCATED, text) or "").lower() == "true"
    token = _single(_TOKEN, text) if truncated else None
    if ampersands:
        keys, e_tags, dates = [[_text(raw) for raw in field] for field in (keys, e_tags, dates)]
    objects = [
        Listed(_decoded(key, encoded), int(size or 0), e_tag, date)
        for key, size, e_tag, date in zip(keys, sizes, e_tags, dates, strict=True)
    ]
    return Page(objects, [_decoded(_text(p), encoded) for p in prefixes], token)


def _single(pattern: re.Pattern[str], text: str) -> str | None:
    """The text of an element that occurs at most once in a page (ElementTree's findtext
    takes the first of the root's children, which regular expressions cannot tell apart)."""
    found = pattern.findall(text)
    if len(found) > 1:
        raise _NotPlain
    return _text(found[0]) if found else None


def _text(raw: str) -> str:
    """XML text with its references resolved, as ElementTree gives it."""
    if "&" not in raw:
        return raw
    if raw.count("&") != len(_ENTITY.findall(raw)):
        raise _NotPlain  # an "&" that is no reference: not well formed, ElementTree raises
    return _ENTITY.sub(_resolved, raw)


def _resolved(match: re.Match[str]) -> str:
    named, decimal, hexadecimal = match.groups()
    if named:
        return _NAMED[named]
    code = int(decimal) if decimal else int(hexadecimal, 16)
    # XML 1.0's Char production: ElementTree raises on a reference to any other code.
    if not (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    ):
        raise _NotPlain
    return chr(code)


def _decoded(text: str, encoded: bool) -> str:
    # With encoding-type=url keys travel percent-encoded ("+" for a space).
    return unquote_plus(text) if encoded and ("%" in text or "+" in text) else text


def next_token(body: bytes) -> str | None:
    """The NextContinuationToken of a page, found without parsing the whole page (only the
    element itself is parsed, for its entities); None if there is none."""
    start = body.find(b"<NextContinuationToken>")
    end = body.find(b"</NextContinuationToken>", start)
    if start < 0 or end < 0:
        return None
    element = ElementTree.fromstring(body[start : end + len(b"</NextContinuationToken>")])
    return element.text or None
