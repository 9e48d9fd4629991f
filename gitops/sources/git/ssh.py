"""Git over SSH through the system's OpenSSH client, with host keys always verified.

dulwich runs ``git-upload-pack`` on the remote through an "SSH vendor"; this one
builds the ``ssh`` command line itself so that every connection is non-interactive,
bounded in time and strict about host keys: an unknown or changed host key is refused
unless the caller explicitly chose ``insecure_ignore_host_key``. A private key given as
text is written to a 0600 file in a private directory and removed by :meth:`close`.
A key passphrase reaches ssh through ``SSH_ASKPASS`` in the child's environment only,
never on a command line. This module never logs a secret and never reads ssh output
itself (dulwich does, and :mod:`.translate` classifies it).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from dulwich.client import SSHVendor, SubprocessWrapper

from gitops.sources.git.credentials import Credentials

__all__ = ["OpenSSHVendor", "ssh_available"]

_ASKPASS = '#!/bin/sh\nprintf "%s\\n" "$GITOPS_SSH_ASKPASS_SECRET"\n'


def ssh_available() -> bool:
    """True when an OpenSSH ``ssh`` client is on PATH."""
    return shutil.which("ssh") is not None


class OpenSSHVendor(SSHVendor):
    """Runs ``ssh`` with strict, non-interactive options derived from :class:`Credentials`."""

    def __init__(self, credentials: Credentials, timeout: float) -> None:
        self._creds = credentials
        self._timeout = timeout
        self._tmp: Path | None = None

    def _private_dir(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="gitops-ssh-"))
            os.chmod(self._tmp, 0o700)
        return self._tmp

    def _key_file(self) -> str | None:
        key = self._creds.ssh_key
        if key is None:
            return None
        if not self._creds.ssh_key_is_inline:
            return os.fspath(Path(key).expanduser())
        path = self._private_dir() / "id"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(key.strip() + "\n")
        return os.fspath(path)

    def _askpass(self) -> str:
        path = self._private_dir() / "askpass"
        if not path.exists():
            path.write_text(_ASKPASS)
            os.chmod(path, 0o700)
        return os.fspath(path)

    def options(self) -> list[str]:
        """The ``-o`` options every connection uses (no secrets in them)."""
        timeout = max(1, math.ceil(self._timeout))
        opts = [
            f"ConnectTimeout={timeout}",
            f"ServerAliveInterval={max(1, timeout // 3)}",
            "ServerAliveCountMax=3",
            "PasswordAuthentication=no",
            "KbdInteractiveAuthentication=no",
            "LogLevel=ERROR",
            "UpdateHostKeys=no",
        ]
        if self._creds.ssh_key_passphrase is None:
            opts.append("BatchMode=yes")
        else:
            opts.append("NumberOfPasswordPrompts=1")
        if self._creds.insecure_ignore_host_key:
            opts += ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null",
                     "GlobalKnownHostsFile=/dev/null"]
        else:
            opts.append("StrictHostKeyChecking=yes")
            if self._creds.known_hosts is not None:
                opts += [f"UserKnownHostsFile={self._creds.known_hosts}",
                         "GlobalKnownHostsFile=/dev/null"]
        return opts

    def run_command(
        self,
        host: str,
        command: bytes,
        username: str | None = None,
        port: int | None = None,
        password: str | None = None,
        key_filename: str | None = None,
        ssh_command: str | None = None,
        protocol_version: int | None = None,
    ) -> SubprocessWrapper:
        """Start ``ssh ... HOST git-upload-pack 'PATH'``; dulwich talks over its pipes."""
        args = ["ssh", "-x", "-T"]
        for option in self.options():
            args += ["-o", option]
        key = self._key_file()
        if key is not None:
            args += ["-i", key, "-o", "IdentitiesOnly=yes"]
        if port:
            args += ["-p", str(port)]
        if protocol_version is None or protocol_version > 0:
            args += ["-o", f"SetEnv=GIT_PROTOCOL=version={protocol_version or 2}"]
        env = None
        if self._creds.ssh_key_passphrase is not None:
            env = dict(os.environ)
            env.update(SSH_ASKPASS=self._askpass(), SSH_ASKPASS_REQUIRE="force",
                       GITOPS_SSH_ASKPASS_SECRET=self._creds.ssh_key_passphrase)
            env.setdefault("DISPLAY", "gitops")
        destination = f"{username}@{host}" if username else host
        proc = subprocess.Popen(
            [*args, "--", destination, os.fsdecode(command)],
            bufsize=0,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        return SubprocessWrapper(proc)

    def close(self) -> None:
        """Remove the private key copy and askpass helper, if any were written."""
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
