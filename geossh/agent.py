"""Re-export: the public names of ``geossh.services.agent`` at ``geossh.agent``."""

from __future__ import annotations

from geossh.services.agent import (
    ALGORITHM_FLAG_MAP as ALGORITHM_FLAG_MAP,
)
from geossh.services.agent import (
    MAX_AGENT_KEYS as MAX_AGENT_KEYS,
)
from geossh.services.agent import (
    MAX_AGENT_MESSAGE as MAX_AGENT_MESSAGE,
)
from geossh.services.agent import (
    MAX_LOCAL_CLIENTS as MAX_LOCAL_CLIENTS,
)
from geossh.services.agent import (
    SSH2_AGENT_IDENTITIES_ANSWER as SSH2_AGENT_IDENTITIES_ANSWER,
)
from geossh.services.agent import (
    SSH2_AGENT_SIGN_RESPONSE as SSH2_AGENT_SIGN_RESPONSE,
)
from geossh.services.agent import (
    SSH2_AGENTC_REQUEST_IDENTITIES as SSH2_AGENTC_REQUEST_IDENTITIES,
)
from geossh.services.agent import (
    SSH2_AGENTC_SIGN_REQUEST as SSH2_AGENTC_SIGN_REQUEST,
)
from geossh.services.agent import (
    SSH_AGENT_FAILURE as SSH_AGENT_FAILURE,
)
from geossh.services.agent import (
    SSH_AGENT_IDENTITIES_ANSWER as SSH_AGENT_IDENTITIES_ANSWER,
)
from geossh.services.agent import (
    SSH_AGENT_RSA_SHA2_256 as SSH_AGENT_RSA_SHA2_256,
)
from geossh.services.agent import (
    SSH_AGENT_RSA_SHA2_512 as SSH_AGENT_RSA_SHA2_512,
)
from geossh.services.agent import (
    SSH_AGENT_SIGN_RESPONSE as SSH_AGENT_SIGN_RESPONSE,
)
from geossh.services.agent import (
    SSH_AGENT_SUCCESS as SSH_AGENT_SUCCESS,
)
from geossh.services.agent import (
    SSH_AGENTC_REQUEST_IDENTITIES as SSH_AGENTC_REQUEST_IDENTITIES,
)
from geossh.services.agent import (
    SSH_AGENTC_SIGN_REQUEST as SSH_AGENTC_SIGN_REQUEST,
)
from geossh.services.agent import (
    AgentKey as AgentKey,
)
from geossh.services.agent import (
    AgentServerProxy as AgentServerProxy,
)
from geossh.services.agent import (
    AgentSSH as AgentSSH,
)
from geossh.services.agent import (
    Message as Message,
)
from geossh.services.agent import (
    PKey as PKey,
)
from geossh.services.agent import (
    SSHException as SSHException,
)
from geossh.services.agent import (
    UnknownKeyType as UnknownKeyType,
)
from geossh.services.agent import (
    asbytes as asbytes,
)
from geossh.services.agent import (
    cSSH2_AGENTC_REQUEST_IDENTITIES as cSSH2_AGENTC_REQUEST_IDENTITIES,
)
from geossh.services.agent import (
    cSSH2_AGENTC_SIGN_REQUEST as cSSH2_AGENTC_SIGN_REQUEST,
)
