"""``SKKey``: a FIDO security-key user key as the application sees it (geossh addition).

paramiko has no security-key support; geossh hands ``check_auth_publickey``
an ``SKKey`` for ``sk-ssh-ed25519@openssh.com`` and
``sk-ecdsa-sha2-nistp256@openssh.com`` keys (and their certificates). On
the signed request it carries what the authenticator reported
(``sk_flags``, ``sk_counter``, ``user_present``, ``user_verified``).

As sshd, a login needs the user's touch: a signature without the
user-presence flag fails even if the application accepts the key, unless
the application sets ``touch_required = False`` on the key it was given
(authorized_keys ``no-touch-required``). ``verify_required = True``
(``verify-required``) also demands user verification (PIN or biometric).
For a certificate from a CA the application trusts
(``check_auth_cert_authority``) geossh sets both from the certificate (its
``no-touch-required`` extension and ``verify-required`` critical option)
before ``check_auth_certificate``, which may change them.
"""

from __future__ import annotations

from geossh._facade.pkey import PKey
from geossh.proto import keys as _keys


class SKKey(PKey):
    """A security-key public key; never a private key (that stays on the authenticator)."""

    name = _keys.SK_ED25519
    touch_required: bool = True
    verify_required: bool = False

    def __init__(self, data: bytes | None = None) -> None:
        self.public_blob = None
        self.sk_flags: int | None = None
        self.sk_counter: int | None = None
        if data is None:
            raise ValueError("need a key")
        self._load(None, data)

    @classmethod
    def _key_types(cls) -> tuple[str, ...]:
        return _keys.SK_KEY_TYPES

    @classmethod
    def identifiers(cls) -> list[str]:
        return list(_keys.SK_KEY_TYPES)

    def get_name(self) -> str:
        return self.ssh_key.key_type

    def get_bits(self) -> int:
        return 256

    def can_sign(self) -> bool:
        return False

    @property
    def application(self) -> str:
        """The FIDO application (relying party) the key was made for, e.g. ``ssh:``."""
        key = self.ssh_key
        assert isinstance(key, _keys.SecurityKey)
        return key.application

    @property
    def user_present(self) -> bool:
        """The signature's user-presence flag (False before a signed request)."""
        return bool((self.sk_flags or 0) & _keys.SK_USER_PRESENT)

    @property
    def user_verified(self) -> bool:
        """The signature's user-verification flag (False before a signed request)."""
        return bool((self.sk_flags or 0) & _keys.SK_USER_VERIFIED)

    def assertion_refusal(self) -> str | None:
        """Why a signed login with this key must fail despite the application, or None."""
        if self.sk_flags is None:
            return None
        if self.touch_required and not self.user_present:
            return "security key was not touched (user presence required)"
        if self.verify_required and not self.user_verified:
            return "security key did not verify the user (verify-required)"
        return None
