"""Re-export: the public names of ``geossh.services.agent`` at ``geossh.agent``."""

from __future__ import annotations

from geossh._facade.message import (
    Message as Message,
)
from geossh._facade.pkey import (
    PKey as PKey,
    UnknownKeyType as UnknownKeyType,
)
from geossh._facade.util import (
    asbytes as asbytes,
)
from geossh.errors import (
    SSHException as SSHException,
)
from geossh.services.agent import (
    ALGORITHM_FLAG_MAP as ALGORITHM_FLAG_MAP,
    MAX_AGENT_KEYS as MAX_AGENT_KEYS,
    MAX_AGENT_MESSAGE as MAX_AGENT_MESSAGE,
    MAX_LOCAL_CLIENTS as MAX_LOCAL_CLIENTS,
    SSH2_AGENT_IDENTITIES_ANSWER as SSH2_AGENT_IDENTITIES_ANSWER,
    SSH2_AGENT_SIGN_RESPONSE as SSH2_AGENT_SIGN_RESPONSE,
    SSH2_AGENTC_REQUEST_IDENTITIES as SSH2_AGENTC_REQUEST_IDENTITIES,
    SSH2_AGENTC_SIGN_REQUEST as SSH2_AGENTC_SIGN_REQUEST,
    SSH_AGENT_FAILURE as SSH_AGENT_FAILURE,
    SSH_AGENT_IDENTITIES_ANSWER as SSH_AGENT_IDENTITIES_ANSWER,
    SSH_AGENT_RSA_SHA2_256 as SSH_AGENT_RSA_SHA2_256,
    SSH_AGENT_RSA_SHA2_512 as SSH_AGENT_RSA_SHA2_512,
    SSH_AGENT_SIGN_RESPONSE as SSH_AGENT_SIGN_RESPONSE,
    SSH_AGENT_SUCCESS as SSH_AGENT_SUCCESS,
    SSH_AGENTC_REQUEST_IDENTITIES as SSH_AGENTC_REQUEST_IDENTITIES,
    SSH_AGENTC_SIGN_REQUEST as SSH_AGENTC_SIGN_REQUEST,
    AgentKey as AgentKey,
    AgentServerProxy as AgentServerProxy,
    AgentSSH as AgentSSH,
    cSSH2_AGENTC_REQUEST_IDENTITIES as cSSH2_AGENTC_REQUEST_IDENTITIES,
    cSSH2_AGENTC_SIGN_REQUEST as cSSH2_AGENTC_SIGN_REQUEST,
)
