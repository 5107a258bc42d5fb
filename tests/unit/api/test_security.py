"""The Host check's pure parts: the name in a Host header, and which names are this computer."""

from __future__ import annotations

import pytest

from app.api.security import host_name, is_loopback


@pytest.mark.parametrize(("header", "name"), [
    ("localhost", "localhost"),
    ("localhost:8765", "localhost"),
    ("LocalHost:8765", "localhost"),
    (" 127.0.0.1:80 ", "127.0.0.1"),
    ("127.0.0.1", "127.0.0.1"),
    ("[::1]:8765", "::1"),
    ("[::1]", "::1"),
    ("::1", "::1"),  # a bare IPv6 address (not valid in a Host header, but not misread)
    ("[::1", ""),  # unclosed bracket: no name
    ("evil.example:8765", "evil.example"),
    ("127.0.0.1.nip.io:8765", "127.0.0.1.nip.io"),
    ("", ""),
])
def test_host_name(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "127.0.0.2", "127.255.255.254",
                                  "::1", "localhost.localdomain"])
def test_loopback_names(name):
    assert is_loopback(name)


@pytest.mark.parametrize("name", ["", "0.0.0.0", "::", "192.168.1.10", "10.0.0.1",
                                  "evil.example", "127.0.0.1.nip.io", "localhost.evil.example",
                                  "localhost:8765", "[::1]", "2130706433", "0x7f.1"])
def test_foreign_names(name):
    assert not is_loopback(name)


@pytest.mark.parametrize("header", ["localhost:1", "127.0.0.1:8765", "[::1]:8765",
                                    "LOCALHOST"])
def test_loopback_headers_pass_together(header):
    assert is_loopback(host_name(header))


@pytest.mark.parametrize("header", ["evil.example", "localhost.evil.example:80",
                                    "127.0.0.1.nip.io", "[::ffff:c0a8:10a]:80", "0.0.0.0:8765"])
def test_foreign_headers_fail_together(header):
    assert not is_loopback(host_name(header))
