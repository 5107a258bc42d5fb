"""Checks shared by the zip-based office formats before a parser library sees the file."""

from __future__ import annotations

import os
import zipfile

from app.core.extract.types import ExtractionError

# Password-protected OOXML files are not zips at all but OLE compound files (the same
# container as legacy .doc/.xls), holding an "EncryptedPackage" stream.
OLE_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_SCAN_CHUNK = 1 << 20


def _has_encrypted_package(path: str) -> bool:
    overlap = len(_ENCRYPTED_STREAM)
    tail = b""
    with open(path, "rb") as f:
        while chunk := f.read(_SCAN_CHUNK):
            if _ENCRYPTED_STREAM in tail + chunk:
                return True
            tail = chunk[-overlap:]
    return False


def check_zip_container(path: str | os.PathLike[str], label: str, ext: str) -> None:
    """Raise "encrypted" for OLE-wrapped files and "corrupt" for anything that is not a zip.

    `label` names the format for people ("Word document"), `ext` is its extension (".docx").
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(len(OLE_MAGIC))
    if head == OLE_MAGIC:
        if _has_encrypted_package(path):
            reason = f"This {label} is password-protected; remove the password to index it."
        else:
            reason = (
                f"This {label} is password-protected or saved in an older format; remove the "
                f"password or re-save it as {ext} to index it."
            )
        raise ExtractionError("encrypted", reason)
    if not zipfile.is_zipfile(path):
        raise ExtractionError(
            "corrupt",
            f"This {label} appears to be damaged or is not really a {ext} file (it is not a "
            "valid zip archive); try opening and re-saving it.",
        )
