"""The log file: credentials redacted from every line, library debug output capped, private
file modes. (End to end, with botocore's real output: tests/integration/test_backup.py.)"""

from __future__ import annotations

import io
import logging
import os
import stat
import sys
import uuid
from urllib.parse import quote

import pytest

from app.config import load_settings
from app.logsafety import REDACTED, RedactingFilter, redact, register_secret
from app.logsetup import LIBRARY_LOGGERS, PrivateRotatingFileHandler, set_level, setup_logging

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
TEMP_KEY_ID = "ASIAY34FZKBOKMUTVV7A"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+sessiontoken=="
SIGNATURE = "b0f3e4c9d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1"

# What botocore, an STS or SSO response, a presigned URL, a config dump or a bearer header can
# put in a log line, with the credential values above.
LEAKY = {
    "request headers": "Sending http request: <AWSPreparedRequest method=PUT, headers={"
                       "'X-Amz-Date': b'20261130T012345Z', 'X-Amz-Security-Token': b'" + TOKEN
                       + "', 'Authorization': b'AWS4-HMAC-SHA256 Credential=" + TEMP_KEY_ID
                       + "/20261130/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, "
                       "Signature=" + SIGNATURE + "'}>",
    "canonical request": "CanonicalRequest:\nGET\n/bucket/key\n\nhost:s3.amazonaws.com\n"
                         "x-amz-security-token:" + TOKEN + "\n\nhost;x-amz-security-token",
    "signature line": "Signature:\n" + SIGNATURE,
    "presigned url": "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
                     "X-Amz-Credential=" + TEMP_KEY_ID + "%2F20261130%2Fus-east-1%2Fs3%2F"
                     "aws4_request&X-Amz-Security-Token=" + quote(TOKEN, safe="")
                     + "&X-Amz-Signature=" + SIGNATURE,
    "sigv2 url": "https://b.s3.amazonaws.com/k?AWSAccessKeyId=" + KEY_ID + "&Expires=1&"
                 "Signature=" + quote(SECRET[:20], safe=""),
    "http.client wire": "send: b'GET /k HTTP/1.1\\r\\nHost: s3\\r\\nAuthorization: "
                        "AWS4-HMAC-SHA256 Credential=" + KEY_ID + "/x, Signature=" + SIGNATURE
                        + "\\r\\nX-Amz-Security-Token: " + TOKEN + "\\r\\n\\r\\n'",
    "sts xml": "Response body:\nb'<Credentials><AccessKeyId>" + TEMP_KEY_ID
               + "</AccessKeyId><SecretAccessKey>" + SECRET + "</SecretAccessKey><SessionToken>"
               + TOKEN + "</SessionToken></Credentials>'",
    "sso json": '{"roleCredentials": {"accessKeyId": "' + TEMP_KEY_ID + '", "secretAccessKey": "'
                + SECRET + '", "sessionToken": "' + TOKEN + '", "expiration": 1}}',
    "dict repr": "{'aws_access_key_id': '" + KEY_ID + "', 'aws_secret_access_key': '" + SECRET
                 + "', 'aws_session_token': '" + TOKEN + "'}",
    "ini file": "[default]\naws_access_key_id = " + KEY_ID + "\naws_secret_access_key = "
                + SECRET + "\naws_session_token=" + TOKEN,
    "environment": "AWS_SECRET_ACCESS_KEY=" + SECRET + " AWS_SESSION_TOKEN=" + TOKEN,
    "bearer": "headers={'Authorization': 'Bearer sk-" + SECRET[:24] + "'} then bearer "
              + TOKEN[:30],
}


def capture(name: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(f"test.logsafety.{name}.{uuid.uuid4().hex[:6]}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, out


@pytest.mark.parametrize("kind", sorted(LEAKY))
def test_filter_redacts_credentials_in_message_and_args(kind):
    logger, out = capture(kind)
    logger.debug(LEAKY[kind])  # in the message itself…
    logger.debug("%s: %r", kind, LEAKY[kind])  # …and formatted from arguments (repr'd too)
    text = out.getvalue()
    for value in (KEY_ID, TEMP_KEY_ID, SECRET, TOKEN, SIGNATURE, quote(TOKEN, safe=""),
                  SECRET[:20], SIGNATURE[:16]):
        assert value not in text, (kind, value, text)
    assert REDACTED in text


def test_filter_redacts_registered_secrets_anywhere_and_tracebacks():
    odd = f"Zq{uuid.uuid4().hex}/x+y"
    register_secret(odd)
    logger, out = capture("registered")
    logger.warning("cannot open /tmp/%s/file and ?p=%s", odd, quote(odd, safe=""))
    try:
        raise RuntimeError(f"endpoint said no to {odd}")
    except RuntimeError:
        logger.exception("request failed")
    logger.info("a broken format %d", odd)
    text = out.getvalue()
    assert odd not in text and quote(odd, safe="") not in text
    assert "RuntimeError: endpoint said no to [REDACTED]" in text
    assert "Traceback" in text and "a broken format %d (arguments that did not fit" in text


def test_filter_leaves_ordinary_lines_alone_and_is_idempotent():
    ordinary = ("backup 3f9c2a7d1b40/20261130T012345Z-1a2b: 21 files, 3 uploaded (1234 bytes)",
                "S3 rejected the secret access key: it does not match (SignatureDoesNotMatch)",
                "s3://my-backups/lancedb-sync/devices/3f9c2a7d1b40/index/docs.lance/data/a.lance",
                "skipped a password-protected PDF; credential chain: environment",
                "Calculating signature using v4 auth.")
    for line in ordinary:
        assert redact(line) == line
    once = redact(LEAKY["request headers"])
    assert redact(once) == once
    assert REDACTED + "]" not in once


def test_register_secret_ignores_empty_and_tiny_values():
    for value in (None, "", "ab", 42):
        register_secret(value)
    assert redact("ab cd 42") == "ab cd 42"


@pytest.fixture
def logging_state():
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in LIBRARY_LOGGERS}
    yield
    for h in root.handlers:
        if h not in saved[0]:
            h.close()
    root.handlers[:], _, levels = saved
    root.setLevel(saved[1])
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_library_loggers_stay_at_info_unless_opted_in(logging_state):
    set_level("debug", env={})
    assert logging.getLogger().isEnabledFor(logging.DEBUG)
    for name in LIBRARY_LOGGERS:
        assert not logging.getLogger(f"{name}.sub").isEnabledFor(logging.DEBUG)
        assert logging.getLogger(f"{name}.sub").isEnabledFor(logging.INFO)
    set_level("debug", env={"LANCEDB_SYNC_DEBUG_LIBRARIES": "1"})
    assert logging.getLogger("botocore.endpoint").isEnabledFor(logging.DEBUG)
    set_level("warning", env={})  # the cap never lets more through than the app's own level
    assert not logging.getLogger("botocore.endpoint").isEnabledFor(logging.INFO)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_log_file_rotated_copies_and_folder_are_private(tmp_path, logging_state):
    settings = load_settings(home=tmp_path, env={"LANCEDB_SYNC_LOG_LEVEL": "debug"})
    log_dir = settings.paths.log_dir
    log_dir.mkdir(parents=True)
    os.chmod(log_dir, 0o755)
    older = log_dir / "lancedb-sync.log.1"  # as an earlier version left them: world-readable
    older.write_text("old\n")
    os.chmod(older, 0o644)
    handler = setup_logging(settings, env={})
    assert isinstance(handler, PrivateRotatingFileHandler)
    handler.maxBytes = 200  # rotate every few lines
    log = logging.getLogger("test.logsetup")
    for i in range(30):
        log.info("line %d %s", i, "x" * 40)
    files = sorted(log_dir.iterdir())
    assert [f.name for f in files] == ["lancedb-sync.log", "lancedb-sync.log.1",
                                       "lancedb-sync.log.2", "lancedb-sync.log.3"]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o700
