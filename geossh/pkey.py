"""Re-export: the public names of ``geossh._facade.pkey`` at ``geossh.pkey``."""

from __future__ import annotations

from geossh._facade.pkey import (
    OPENSSH as OPENSSH,
)
from geossh._facade.pkey import (
    OPENSSH_AUTH_MAGIC as OPENSSH_AUTH_MAGIC,
)
from geossh._facade.pkey import (
    PEM as PEM,
)
from geossh._facade.pkey import (
    ECDSAKey as ECDSAKey,
)
from geossh._facade.pkey import (
    Ed25519Key as Ed25519Key,
)
from geossh._facade.pkey import (
    FileFormat as FileFormat,
)
from geossh._facade.pkey import (
    Message as Message,
)
from geossh._facade.pkey import (
    PKey as PKey,
)
from geossh._facade.pkey import (
    PublicBlob as PublicBlob,
)
from geossh._facade.pkey import (
    RSAKey as RSAKey,
)
from geossh._facade.pkey import (
    SSHException as SSHException,
)
from geossh._facade.pkey import (
    UnknownKeyType as UnknownKeyType,
)
from geossh._facade.pkey import (
    key_classes as key_classes,
)
from geossh._facade.pkey import (
    o600 as o600,
)
from geossh._facade.pkey import (
    pkey_from_ssh_key as pkey_from_ssh_key,
)
from geossh._facade.pkey import (
    pkey_from_userauth as pkey_from_userauth,
)
