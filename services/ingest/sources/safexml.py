"""XML from the network, parsed safely, and the few ways sources look into it.

The size is checked before parsing (and `Http.get(max_bytes=MAX_XML_BYTES)` stops the download
there); defusedxml refuses any DTD, entity declaration or external reference, so an entity
expansion bomb or an external entity never expands or fetches anything. Elements are found by
local name, whatever namespace a publisher put them in.
"""

from collections.abc import Iterator
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree

from services.ingest.sources.base import SourceError
from services.ingest.sources.text import tidy

MAX_XML_BYTES = 2_000_000  # a CAP message is a few KB; a feed of a few hundred fits easily


def safe_xml(body: bytes) -> Element:
    """The document's root; `SourceError` for one too large, unsafe or malformed."""
    if len(body) > MAX_XML_BYTES:
        raise SourceError(f"XML document of {len(body)} bytes refused (at most {MAX_XML_BYTES})")
    try:
        return defusedxml.ElementTree.fromstring(
            body, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DefusedXmlException as e:
        raise SourceError(f"unsafe XML refused: {type(e).__name__} ({e})") from None
    except ParseError as e:
        raise SourceError(f"malformed XML: {e}") from None


def local(el: Element) -> str:
    return el.tag.rpartition("}")[2] if isinstance(el.tag, str) else ""


def namespace(el: Element) -> str:
    return el.tag[1:].partition("}")[0] if isinstance(el.tag, str) and el.tag[:1] == "{" else ""


def children(el: Element, name: str) -> Iterator[Element]:
    return (c for c in el if local(c) == name)


def child(el: Element, name: str) -> Element | None:
    return next(children(el, name), None)


def text(el: Element | None, name: str) -> str:
    """The tidied text of `el`'s first child called `name`; "" when there is none."""
    found = child(el, name) if el is not None else None
    return tidy(found.text or "") if found is not None else ""
