"""Re-export: the public names of ``geossh._facade.pkey`` at ``geossh.pkey``."""

from __future__ import annotations

from geossh._facade.common import (
    o600 as o600,
)
from geossh._facade.ecdsakey import (
    ECDSAKey as ECDSAKey,
)
from geossh._facade.ed25519key import (
    Ed25519Key as Ed25519Key,
)
from geossh._facade.message import (
    Message as Message,
)
from geossh._facade.pkey import (
    OPENSSH as OPENSSH,
    OPENSSH_AUTH_MAGIC as OPENSSH_AUTH_MAGIC,
    PEM as PEM,
    FileFormat as FileFormat,
    PKey as PKey,
    PublicBlob as PublicBlob,
    UnknownKeyType as UnknownKeyType,
    key_classes as key_classes,
    pkey_from_ssh_key as pkey_from_ssh_key,
    pkey_from_userauth as pkey_from_userauth,
)
from geossh._facade.rsakey import (
    RSAKey as RSAKey,
)
from geossh.errors import (
    SSHException as SSHException,
)
