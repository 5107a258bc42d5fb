"""Email messages (.eml), through the standard library's email package."""

from __future__ import annotations

import os
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from app.core.extract.markup import paragraph_blocks
from app.core.extract.types import Block, Extracted

EXTENSIONS = frozenset({".eml"})
MIME = "message/rfc822"


def _part_text(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):
        # Unknown or wrong charset label: decode the raw payload as best we can.
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    if isinstance(content, bytes):
        return content.decode("utf-8", errors="replace")
    return content if isinstance(content, str) else ""


def _body_blocks(message: EmailMessage) -> list[Block]:
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return []
    text = _part_text(body)  # type: ignore[arg-type]
    if body.get_content_subtype() == "html":
        from app.core.extract.html import html_to_blocks

        return html_to_blocks(text, strip_boilerplate=False)[1]
    return paragraph_blocks(text)


def extract(path: str | os.PathLike[str]) -> Extracted:
    with open(path, "rb") as f:
        message = BytesParser(policy=policy.default).parse(f)
    assert isinstance(message, EmailMessage)  # policy.default always builds EmailMessage

    subject = " ".join(str(message.get("subject", "")).split())
    metadata: dict[str, str] = {}
    for header in ("from", "to", "cc", "date", "message-id"):
        value = message.get(header)
        if value:
            metadata[header] = " ".join(str(value).split())
    if subject:
        metadata["subject"] = subject
    attachments = [
        part.get_filename() for part in message.iter_attachments() if part.get_filename()
    ]
    if attachments:
        metadata["attachments"] = ", ".join(name for name in attachments if name)

    blocks = [Block(subject, "heading", 1)] if subject else []
    blocks.extend(_body_blocks(message))
    return Extracted(tuple(blocks), MIME, subject or None, metadata)
