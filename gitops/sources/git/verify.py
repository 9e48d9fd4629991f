"""OpenPGP signature verification of commits and tags with the real ``gpg``.

Like Flux's ``spec.verify``: mode ``head`` verifies the commit being fetched, ``tag``
the annotated tag that names it, ``tag_and_head`` both. Only the given public keys are
trusted: they are imported into a private, temporary ``GNUPGHOME`` (never the user's
keyring), and a signature counts only when gpg reports it good *and* valid from one of
them (``GOODSIG`` + ``VALIDSIG``); an unsigned object, an unknown, expired or revoked key
and a bad signature are each refused with a :class:`~gitops.errors.VerificationError`.
This module never fetches keys from keyservers and never trusts the machine's keyring.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from gitops.errors import InputError, SourceError, VerificationError

__all__ = ["ENV_PUBLIC_KEYS", "ENV_VERIFY", "SignatureVerifier", "VerifyMode", "gpg_available",
           "parse_mode"]

#: Read when no ``verify`` option is given (how the command line asks for verification):
#: the mode, and key files separated by ``os.pathsep``. Nothing can turn verification off.
ENV_VERIFY = "GITOPS_GIT_VERIFY"
ENV_PUBLIC_KEYS = "GITOPS_GIT_PUBLIC_KEYS"

_PGP_MARKERS = (b"-----BEGIN PGP SIGNATURE-----", b"-----BEGIN PGP MESSAGE-----")
_SSH_MARKER = b"-----BEGIN SSH SIGNATURE-----"
_TIMEOUT = 60.0


class VerifyMode(StrEnum):
    """What must carry a trusted signature."""

    HEAD = "head"
    TAG = "tag"
    TAG_AND_HEAD = "tag_and_head"

    @property
    def head(self) -> bool:
        return self is not VerifyMode.TAG

    @property
    def tag(self) -> bool:
        return self is not VerifyMode.HEAD


def parse_mode(shown: str, mode: str) -> VerifyMode:
    """``head``, ``tag`` or ``tag_and_head`` (Flux's ``HEAD``/``Tag``/``TagAndHEAD`` too)."""
    key = mode.strip().lower().replace("-", "").replace("_", "")
    modes = {"head": VerifyMode.HEAD, "tag": VerifyMode.TAG, "tagandhead": VerifyMode.TAG_AND_HEAD}
    if key not in modes:
        raise InputError(f"{shown}: unknown verify mode {mode!r}; expected head, tag or "
                         "tag_and_head")
    return modes[key]


def gpg_available() -> bool:
    """True when a ``gpg`` program is on PATH."""
    return shutil.which("gpg") is not None


class SignatureVerifier:
    """Verifies detached OpenPGP signatures against a fixed set of public keys.

    ``public_keys`` items are ASCII-armored key text or paths to key files (armored or
    binary). Keys are imported lazily, on the first verification.
    """

    def __init__(self, shown: str, public_keys: Sequence[str | os.PathLike[str]]) -> None:
        self._shown = shown
        if not public_keys:
            raise InputError(f"{shown}: signature verification needs public_keys")
        if not gpg_available():
            raise SourceError(shown, "signature verification needs gpg, which is not installed")
        self._keys = list(public_keys)
        for key in self._keys:
            if not _is_armored(key) and not Path(os.fspath(key)).expanduser().is_file():
                raise InputError(f"{shown}: public key file {os.fspath(key)} does not exist")
        self._home: Path | None = None
        self._fingerprints: set[str] = set()

    @property
    def fingerprints(self) -> frozenset[str]:
        """Primary-key fingerprints of the trusted keys (after the first verification)."""
        return frozenset(self._fingerprints)

    def verify(self, payload: bytes, signature: bytes | None, what: str) -> str:
        """Return the signer's primary-key fingerprint; raise VerificationError otherwise.

        ``what`` names the object in messages (``commit 1a2b…``, ``tag v1.0``).
        """
        if not signature:
            raise VerificationError(self._shown, f"{what} is not signed")
        if signature.lstrip().startswith(_SSH_MARKER):
            raise VerificationError(self._shown, f"{what} has an SSH signature; only OpenPGP "
                                                 "signatures can be verified")
        if not signature.lstrip().startswith(_PGP_MARKERS):
            raise VerificationError(self._shown, f"{what} has a signature that is not "
                                                 "OpenPGP; only OpenPGP signatures can be verified")
        home = self._ensure_home()
        sig_path = home / "signature.asc"
        sig_path.write_bytes(signature)
        status = self._gpg(["--verify", os.fspath(sig_path), "-"], payload, check=False)
        return self._judge(status, what)

    def close(self) -> None:
        """Delete the temporary keyring. Idempotent."""
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)  # --no-autostart: no agent to stop
            self._home = None

    # -- internals -----------------------------------------------------------------

    def _judge(self, status: str, what: str) -> str:
        codes: dict[str, list[str]] = {}
        for line in status.splitlines():
            if line.startswith("[GNUPG:] "):
                fields = line[len("[GNUPG:] "):].split()
                if fields:
                    codes.setdefault(fields[0], fields[1:])
        if "GOODSIG" in codes and "VALIDSIG" in codes:
            primary = codes["VALIDSIG"][-1].upper()
            if primary in self._fingerprints:
                return primary
        if "NO_PUBKEY" in codes:
            keyid = (codes["NO_PUBKEY"] or ["?"])[0]
            raise VerificationError(self._shown, f"{what} is signed by key {keyid}, which is not "
                                                 "one of the trusted public keys")
        for code, reason in (("EXPKEYSIG", "an expired key"), ("REVKEYSIG", "a revoked key"),
                             ("EXPSIG", "an expired signature"),
                             ("BADSIG", "a BAD signature: the content does not match it")):
            if code in codes:
                raise VerificationError(self._shown, f"{what} has {reason}")
        raise VerificationError(self._shown, f"{what}: the signature could not be verified")

    def _ensure_home(self) -> Path:
        if self._home is not None:
            return self._home
        home = Path(tempfile.mkdtemp(prefix="gitops-gpg-"))
        os.chmod(home, 0o700)
        self._home = home
        for number, key in enumerate(self._keys):
            path = self._key_file(home, number, key)
            self._gpg(["--import", os.fspath(path)], b"", check=True)
        listing = self._gpg(["--list-keys", "--with-colons", "--fingerprint"], b"", check=True,
                            status=False)
        previous = ""
        for line in listing.splitlines():
            fields = line.split(":")
            if fields[0] == "fpr" and previous == "pub":
                self._fingerprints.add(fields[9].upper())
            if fields[0] in ("pub", "sub"):
                previous = fields[0]
            elif fields[0] == "fpr":
                previous = ""
        if not self._fingerprints:
            raise InputError(f"{self._shown}: public_keys hold no OpenPGP public key")
        return home

    def _key_file(self, home: Path, number: int, key: str | os.PathLike[str]) -> Path:
        if isinstance(key, str) and _is_armored(key):
            path = home / f"key-{number}.asc"
            path.write_text(key)
            return path
        return Path(os.fspath(key)).expanduser()

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["GNUPGHOME"] = os.fspath(self._home) if self._home else ""
        env.pop("GPG_AGENT_INFO", None)
        return env

    def _gpg(self, args: list[str], data: bytes, *, check: bool, status: bool = True) -> str:
        command = ["gpg", "--batch", "--no-tty", "--no-autostart", "--trust-model", "always",
                   "--no-auto-key-retrieve"]
        if status:
            command += ["--status-fd", "1"]
        try:
            done = subprocess.run(command + args, input=data, capture_output=True,
                                  env=self._env(), timeout=_TIMEOUT, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise SourceError(self._shown, f"running gpg failed: {exc}") from exc
        if check and done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            raise InputError(f"{self._shown}: gpg could not read public_keys: "
                             f"{reason[-1] if reason else done.returncode}")
        return done.stdout.decode(errors="replace")


def _is_armored(key: str | os.PathLike[str]) -> bool:
    return isinstance(key, str) and "-----BEGIN PGP PUBLIC KEY BLOCK-----" in key
