"""Credentials in the OS keyring, behind one small seam.

Every secret lives under one keyring service name (`lancedb-sync`), keyed
`"<source_type>:<source_id>:<field>"` (for example `s3:backup:secret_access_key` or
`notion:work:token`). Nothing else in the app talks to `keyring`.

Rules, after Maestral's keyring module:

- Only backends known to encrypt at rest are used silently (Secret Service / libsecret, KWallet,
  macOS Keychain, Windows Credential Locker). Anything else — keyring's `fail` backend, the
  plaintext files of `keyrings.alt`, the null backend — is *insecure*: `set_secret` refuses with
  `NoSecureBackendError` unless the person opted in (`allow_insecure_secrets`).
- A read or write may block until the person unlocks the keyring or answers a prompt, sometimes
  forever (a Secret Service with nobody to show its prompt). Each call therefore runs in a daemon
  thread and gives up after `timeout` seconds with `KeyringTimeoutError`; the caller marks the
  source "needs attention" and carries on. Callers on a UI thread must still call these functions
  from a worker thread: even the timeout is too long for a UI thread to wait.
- A locked keyring or a denied prompt raises `KeyringLockedError`. All three errors subclass
  `SecretsError` and carry a message a person can act on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from app.logsafety import register_secret

SERVICE_NAME = "lancedb-sync"
DEFAULT_TIMEOUT = 10.0

# Backends that keep secrets encrypted at rest, by class path prefix.
SECURE_BACKENDS = (
    "keyring.backends.SecretService.",
    "keyring.backends.libsecret.",
    "keyring.backends.kwallet.",
    "keyring.backends.macOS.",
    "keyring.backends.Windows.",
)

T = TypeVar("T")


class SecretsError(Exception):
    """The keyring cannot be used right now. The message says what to do."""


class NoSecureBackendError(SecretsError):
    """Only an insecure (plaintext) backend, or none at all, is available."""


class KeyringLockedError(SecretsError):
    """The keyring is locked, or the person dismissed the unlock prompt."""


class KeyringTimeoutError(SecretsError):
    """The keyring did not answer in time (usually: it waits for an unlock prompt)."""


@dataclass(frozen=True, slots=True)
class BackendInfo:
    name: str  # class path, e.g. keyring.backends.SecretService.Keyring
    secure: bool
    available: bool  # False: keyring's fail backend, nothing can be stored at all

    @property
    def description(self) -> str:
        if not self.available:
            return "No keyring is available on this system."
        short = self.name.rsplit(".", 2)[-2] if "." in self.name else self.name
        return f"{short} ({'encrypted' if self.secure else 'NOT encrypted: plaintext'})"


def secret_key(source_type: str, source_id: str, field: str) -> str:
    for part in (source_type, source_id, field):
        if not part or ":" in part:
            raise ValueError(f"Invalid part {part!r} of a secret key (empty or contains ':').")
    return f"{source_type}:{source_id}:{field}"


_lock = threading.Lock()


def _class_path(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _backends(kr: Any) -> list[Any]:
    # The chainer hands calls to several backends: judge each of them.
    return list(getattr(kr, "backends", None) or [kr]) if _class_path(kr).endswith(
        "chainer.ChainerBackend") else [kr]


def describe_backend(kr: Any) -> BackendInfo:
    """Classify a keyring backend object (pure; used by `backend_info`)."""
    parts = _backends(kr)
    names = [_class_path(b) for b in parts]
    usable = [n for n in names if not n.startswith(("keyring.backends.fail.",
                                                     "keyring.backends.null."))]
    if not usable:
        return BackendInfo(names[0] if names else "none", secure=False, available=False)
    secure = all(n.startswith(SECURE_BACKENDS) for n in usable)
    return BackendInfo(", ".join(usable), secure=secure, available=True)


def backend_info(timeout: float | None = None) -> BackendInfo:
    """Which backend `keyring` picked, and whether it encrypts. May probe D-Bus: call it off the
    UI thread."""
    import keyring

    return _call(lambda: describe_backend(keyring.get_keyring()), timeout)


def _call(fn: Callable[[], T], timeout: float | None) -> T:
    """Run one keyring call in a daemon thread; give up after `timeout` seconds."""
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            with _lock:
                result.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name="keyring call", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise KeyringTimeoutError(
            f"The keyring did not answer within {timeout:g} s. It is probably locked and "
            "waiting for you to unlock it: unlock it (for example by logging in to your "
            "desktop's keyring), then try again.")
    if error:
        raise _translate(error[0]) from error[0]
    return result[0]


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, SecretsError):
        return exc
    try:
        from keyring import errors
    except ImportError:  # pragma: no cover - keyring is a dependency
        return exc
    if isinstance(exc, errors.KeyringLocked):
        return KeyringLockedError("The keyring is locked. Unlock it, then try again.")
    if isinstance(exc, errors.NoKeyringError):
        return NoSecureBackendError(_NO_BACKEND)
    if isinstance(exc, errors.KeyringError):
        text = str(exc) or type(exc).__name__
        if "dismiss" in text.lower() or "prompt" in text.lower():
            return KeyringLockedError(
                "The keyring prompt was dismissed, so the keyring stayed locked. Unlock it, "
                "then try again.")
        return KeyringLockedError(f"The keyring refused the request: {text}")
    return exc


_NO_BACKEND = (
    "No secure keyring is available, so credentials cannot be stored safely. Install and start "
    "a Secret Service provider (GNOME Keyring or KWallet), or allow storing secrets unencrypted "
    "in Settings (not recommended).")


def _check_backend(kr: Any, allow_insecure: bool) -> None:
    info = describe_backend(kr)
    if not info.available:
        raise NoSecureBackendError(_NO_BACKEND)
    if not info.secure and not allow_insecure:
        raise NoSecureBackendError(
            f"The only keyring available here ({info.name}) stores secrets unencrypted. "
            "Refusing to store credentials in plaintext; install GNOME Keyring or KWallet, or "
            "allow unencrypted secrets in Settings.")


def set_secret(source_type: str, source_id: str, field: str, value: str, *,
               allow_insecure: bool = False, timeout: float | None = None) -> None:
    """Store a secret. Blocks up to `timeout` seconds: never call it on a UI thread."""
    import keyring

    key = secret_key(source_type, source_id, field)
    register_secret(value)

    def run() -> None:
        kr = keyring.get_keyring()
        _check_backend(kr, allow_insecure)
        kr.set_password(SERVICE_NAME, key, value)

    _call(run, timeout)


def get_secret(source_type: str, source_id: str, field: str, *,
               allow_insecure: bool = False, timeout: float | None = None) -> str | None:
    """The stored secret, or None. Blocks up to `timeout` seconds: never on a UI thread."""
    import keyring

    key = secret_key(source_type, source_id, field)

    def run() -> str | None:
        kr = keyring.get_keyring()
        _check_backend(kr, allow_insecure)
        return kr.get_password(SERVICE_NAME, key)

    value = _call(run, timeout)
    register_secret(value)
    return value


def delete_secret(source_type: str, source_id: str, field: str, *,
                  timeout: float | None = None) -> bool:
    """Forget a secret; False if there was none."""
    import keyring
    from keyring.errors import PasswordDeleteError

    key = secret_key(source_type, source_id, field)

    def run() -> bool:
        try:
            keyring.get_keyring().delete_password(SERVICE_NAME, key)
        except PasswordDeleteError:
            return False
        return True

    return _call(run, timeout)
