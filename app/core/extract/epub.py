"""EPUB e-books, read from the zip with the standard library; chapters in spine order."""

from __future__ import annotations

import os
import posixpath
import xml.etree.ElementTree as ET
import zipfile
from urllib.parse import unquote

from app.core.extract.html import html_to_blocks
from app.core.extract.office_zip import check_zip_container
from app.core.extract.types import Block, Extracted, ExtractionError

EXTENSIONS = frozenset({".epub"})
MIME = "application/epub+zip"
LABEL = "EPUB e-book"

_CONTAINER_NS = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF_NS = "{http://www.idpf.org/2007/opf}"
_DC_NS = "{http://purl.org/dc/elements/1.1/}"
_XHTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})
# Font obfuscation also lives in encryption.xml but does not hide any text.
_FONT_OBFUSCATION = ("http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC")


def _damaged(detail: str) -> ExtractionError:
    return ExtractionError(
        "corrupt", f"This {LABEL} appears to be damaged ({detail}); try downloading it again."
    )


def _opf_path(archive: zipfile.ZipFile) -> str:
    try:
        container = ET.fromstring(archive.read("META-INF/container.xml"))
    except KeyError:
        raise _damaged("its META-INF/container.xml is missing") from None
    rootfile = container.find(f".//{_CONTAINER_NS}rootfile")
    if rootfile is None or not rootfile.get("full-path"):
        raise _damaged("its container.xml names no package file")
    return rootfile.get("full-path", "")


def _check_drm(archive: zipfile.ZipFile) -> None:
    try:
        encryption = ET.fromstring(archive.read("META-INF/encryption.xml"))
    except KeyError:
        return
    methods = [
        element.get("Algorithm", "")
        for element in encryption.iter()
        if element.tag.endswith("EncryptionMethod")
    ]
    if any(not method.startswith(_FONT_OBFUSCATION) for method in methods):
        raise ExtractionError(
            "encrypted",
            "This e-book is protected by DRM (copy protection), so its text cannot be read.",
        )


def _spine(archive: zipfile.ZipFile, opf_path: str) -> tuple[list[str], dict[str, str]]:
    """The chapter paths in reading order, and the book's metadata."""
    try:
        opf = ET.fromstring(archive.read(opf_path))
    except KeyError:
        raise _damaged(f"the package file {opf_path} is missing") from None
    base = posixpath.dirname(opf_path)
    manifest: dict[str, tuple[str, str, str]] = {}
    for item in opf.iter(f"{_OPF_NS}item"):
        href = unquote(item.get("href", ""))
        path = posixpath.normpath(posixpath.join(base, href)) if base else href
        media_type, properties = item.get("media-type", ""), item.get("properties", "")
        manifest[item.get("id", "")] = (path, media_type, properties)
    chapters = []
    for ref in opf.iter(f"{_OPF_NS}itemref"):
        entry = manifest.get(ref.get("idref", ""))
        if entry and entry[1] in _XHTML_TYPES and "nav" not in entry[2].split():
            chapters.append(entry[0])
    metadata = {}
    for key in ("title", "creator", "language"):
        node = opf.find(f".//{_DC_NS}{key}")
        if node is not None and node.text and node.text.strip():
            metadata["author" if key == "creator" else key] = node.text.strip()
    return chapters, metadata


def extract(path: str | os.PathLike[str]) -> Extracted:
    check_zip_container(path, LABEL, ".epub")
    blocks: list[Block] = []
    with zipfile.ZipFile(os.fspath(path)) as archive:
        _check_drm(archive)
        chapters, metadata = _spine(archive, _opf_path(archive))
        names = set(archive.namelist())
        for chapter in chapters:
            if chapter not in names:
                continue  # a dangling spine entry should not cost the whole book
            chapter_blocks = html_to_blocks(
                archive.read(chapter), strip_boilerplate=False, xhtml=True
            )[1]
            blocks.extend(chapter_blocks)
    metadata["chapters"] = str(len(chapters))
    return Extracted(tuple(blocks), MIME, metadata.get("title"), metadata)
