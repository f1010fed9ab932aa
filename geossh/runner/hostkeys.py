"""Host keys kept in a state directory, created on first start (like ``sshd -A``).

``load_or_create(state_dir)`` returns the Ed25519, ECDSA P-256 and RSA-3072
host keys stored there, generating any that are missing. Files are named as
sshd names them (``ssh_host_ed25519_key`` and ``.pub``), private files are
created 0600 in a 0700 directory and written in OpenSSH format, so
``ssh-keygen -lf`` reads them and several nodes can share them (see
docs/deployment.md). A new key is written to a temporary file and linked
into place, so concurrent starters never see a partial file: the first one
wins and the others load its key.

Also ``load_host_key(path)``: one private key file with a clear error. A
private key file of ours that the group or others may access is refused,
as sshd refuses it ("UNPROTECTED PRIVATE KEY FILE"): such a key may
already be copied, and a server that signs with it silently cannot be told
from an impostor. Imports no gevent.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from geossh._facade.ecdsakey import ECDSAKey
from geossh._facade.ed25519key import Ed25519Key
from geossh._facade.pkey import OPENSSH, PKey, UnknownKeyType
from geossh._facade.rsakey import RSAKey
from geossh.errors import SSHException

KEY_TYPES: dict[str, Callable[[], PKey]] = {
    "ed25519": Ed25519Key.generate,
    "ecdsa": ECDSAKey.generate,
    "rsa": lambda: RSAKey.generate(3072),
}


class HostKeyError(Exception):
    """A host key could not be read or created (the message says which and why)."""


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/geossh``, else ``~/.local/state/geossh``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "geossh"


def key_path(state_dir: str | os.PathLike[str], kind: str) -> Path:
    """Where the private host key of ``kind`` (ed25519, ecdsa, rsa) is kept."""
    return Path(state_dir) / f"ssh_host_{kind}_key"


def check_permissions(path: str | os.PathLike[str]) -> None:
    """Refuse a key file we own that group or others may access (sshd's ``sshkey_perm_ok``).

    Files owned by another user (e.g. root's keys shared through a group) are
    left to the file system, as sshd leaves them.
    """
    st = os.stat(path)
    if stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o077:
        mode = st.st_mode & 0o777
        raise HostKeyError(
            f"host key {os.fspath(path)} is accessible by others (mode {mode:04o}): "
            f"UNPROTECTED PRIVATE KEY FILE, refused as sshd does; chmod 600 it"
        )


def load_host_key(path: str | os.PathLike[str], password: str | None = None) -> PKey:
    """Read one private host key; ``HostKeyError`` with the file and the reason."""
    try:
        check_permissions(path)
        key = PKey.from_path(os.fspath(path), passphrase=password)
    except FileNotFoundError:
        raise HostKeyError(f"host key {os.fspath(path)} does not exist") from None
    except PermissionError:
        raise HostKeyError(f"host key {os.fspath(path)} is not readable") from None
    except (OSError, SSHException, ValueError, TypeError, UnknownKeyType) as exc:
        raise HostKeyError(f"cannot load host key {os.fspath(path)}: {exc}") from None
    if not key.can_sign():
        raise HostKeyError(f"host key {os.fspath(path)} has no private part")
    return key


def load_or_create(
    state_dir: str | os.PathLike[str], kinds: Sequence[str] = ("ed25519", "ecdsa", "rsa")
) -> list[PKey]:
    """The host keys in ``state_dir`` (created 0700), generating missing ones."""
    directory = Path(state_dir)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise HostKeyError(f"cannot create state directory {directory}: {exc}") from None
    keys = []
    for kind in kinds:
        if kind not in KEY_TYPES:
            raise HostKeyError(f"unknown host key type {kind!r}")
        path = key_path(directory, kind)
        if not path.exists():
            _create(path, KEY_TYPES[kind]())
        keys.append(load_host_key(path))
    return keys


def _create(path: Path, key: PKey) -> None:
    """Write ``key`` (0600) and its ``.pub`` unless another process got there first."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        key.write_private_key_file(str(tmp), file_format=OPENSSH)
        pub = f"{key.get_name()} {key.get_base64()} geossh-host-key\n"
        pub_tmp = tmp.with_name(tmp.name + ".pub")
        pub_tmp.write_text(pub)
        try:
            os.link(tmp, path)  # atomic, and fails if the key already exists
        except FileExistsError:
            return
        os.replace(pub_tmp, path.with_name(path.name + ".pub"))
    except OSError as exc:
        raise HostKeyError(f"cannot write host key {path}: {exc}") from None
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".pub")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def fingerprints(keys: Sequence[PKey]) -> list[str]:
    """``"SHA256:... (ED25519)"``-style lines, as ``ssh-keygen -l`` shows them."""
    return [f"{key.fingerprint} ({key.get_name()})" for key in keys]
