"""Re-export: the public names of ``geossh._facade.common`` at ``geossh.common``."""

from __future__ import annotations

from geossh._facade.common import (
    AUTH_FAILED as AUTH_FAILED,
)
from geossh._facade.common import (
    AUTH_PARTIALLY_SUCCESSFUL as AUTH_PARTIALLY_SUCCESSFUL,
)
from geossh._facade.common import (
    AUTH_SUCCESSFUL as AUTH_SUCCESSFUL,
)
from geossh._facade.common import (
    CONNECTION_FAILED_CODE as CONNECTION_FAILED_CODE,
)
from geossh._facade.common import (
    CRITICAL as CRITICAL,
)
from geossh._facade.common import (
    DEBUG as DEBUG,
)
from geossh._facade.common import (
    DEFAULT_MAX_PACKET_SIZE as DEFAULT_MAX_PACKET_SIZE,
)
from geossh._facade.common import (
    DEFAULT_WINDOW_SIZE as DEFAULT_WINDOW_SIZE,
)
from geossh._facade.common import (
    DISCONNECT_AUTH_CANCELLED_BY_USER as DISCONNECT_AUTH_CANCELLED_BY_USER,
)
from geossh._facade.common import (
    DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE as DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE,
)
from geossh._facade.common import (
    DISCONNECT_SERVICE_NOT_AVAILABLE as DISCONNECT_SERVICE_NOT_AVAILABLE,
)
from geossh._facade.common import (
    ERROR as ERROR,
)
from geossh._facade.common import (
    HIGHEST_USERAUTH_MESSAGE_ID as HIGHEST_USERAUTH_MESSAGE_ID,
)
from geossh._facade.common import (
    INFO as INFO,
)
from geossh._facade.common import (
    MAX_WINDOW_SIZE as MAX_WINDOW_SIZE,
)
from geossh._facade.common import (
    MIN_PACKET_SIZE as MIN_PACKET_SIZE,
)
from geossh._facade.common import (
    MIN_WINDOW_SIZE as MIN_WINDOW_SIZE,
)
from geossh._facade.common import (
    MSG_CHANNEL_CLOSE as MSG_CHANNEL_CLOSE,
)
from geossh._facade.common import (
    MSG_CHANNEL_DATA as MSG_CHANNEL_DATA,
)
from geossh._facade.common import (
    MSG_CHANNEL_EOF as MSG_CHANNEL_EOF,
)
from geossh._facade.common import (
    MSG_CHANNEL_EXTENDED_DATA as MSG_CHANNEL_EXTENDED_DATA,
)
from geossh._facade.common import (
    MSG_CHANNEL_FAILURE as MSG_CHANNEL_FAILURE,
)
from geossh._facade.common import (
    MSG_CHANNEL_OPEN as MSG_CHANNEL_OPEN,
)
from geossh._facade.common import (
    MSG_CHANNEL_OPEN_FAILURE as MSG_CHANNEL_OPEN_FAILURE,
)
from geossh._facade.common import (
    MSG_CHANNEL_OPEN_SUCCESS as MSG_CHANNEL_OPEN_SUCCESS,
)
from geossh._facade.common import (
    MSG_CHANNEL_REQUEST as MSG_CHANNEL_REQUEST,
)
from geossh._facade.common import (
    MSG_CHANNEL_SUCCESS as MSG_CHANNEL_SUCCESS,
)
from geossh._facade.common import (
    MSG_CHANNEL_WINDOW_ADJUST as MSG_CHANNEL_WINDOW_ADJUST,
)
from geossh._facade.common import (
    MSG_DEBUG as MSG_DEBUG,
)
from geossh._facade.common import (
    MSG_DISCONNECT as MSG_DISCONNECT,
)
from geossh._facade.common import (
    MSG_EXT_INFO as MSG_EXT_INFO,
)
from geossh._facade.common import (
    MSG_GLOBAL_REQUEST as MSG_GLOBAL_REQUEST,
)
from geossh._facade.common import (
    MSG_IGNORE as MSG_IGNORE,
)
from geossh._facade.common import (
    MSG_KEXINIT as MSG_KEXINIT,
)
from geossh._facade.common import (
    MSG_NAMES as MSG_NAMES,
)
from geossh._facade.common import (
    MSG_NEWKEYS as MSG_NEWKEYS,
)
from geossh._facade.common import (
    MSG_REQUEST_FAILURE as MSG_REQUEST_FAILURE,
)
from geossh._facade.common import (
    MSG_REQUEST_SUCCESS as MSG_REQUEST_SUCCESS,
)
from geossh._facade.common import (
    MSG_SERVICE_ACCEPT as MSG_SERVICE_ACCEPT,
)
from geossh._facade.common import (
    MSG_SERVICE_REQUEST as MSG_SERVICE_REQUEST,
)
from geossh._facade.common import (
    MSG_UNIMPLEMENTED as MSG_UNIMPLEMENTED,
)
from geossh._facade.common import (
    MSG_USERAUTH_BANNER as MSG_USERAUTH_BANNER,
)
from geossh._facade.common import (
    MSG_USERAUTH_FAILURE as MSG_USERAUTH_FAILURE,
)
from geossh._facade.common import (
    MSG_USERAUTH_GSSAPI_ERROR as MSG_USERAUTH_GSSAPI_ERROR,
)
from geossh._facade.common import (
    MSG_USERAUTH_GSSAPI_ERRTOK as MSG_USERAUTH_GSSAPI_ERRTOK,
)
from geossh._facade.common import (
    MSG_USERAUTH_GSSAPI_EXCHANGE_COMPLETE as MSG_USERAUTH_GSSAPI_EXCHANGE_COMPLETE,
)
from geossh._facade.common import (
    MSG_USERAUTH_GSSAPI_MIC as MSG_USERAUTH_GSSAPI_MIC,
)
from geossh._facade.common import (
    MSG_USERAUTH_GSSAPI_RESPONSE as MSG_USERAUTH_GSSAPI_RESPONSE,
)
from geossh._facade.common import (
    MSG_USERAUTH_GSSAPI_TOKEN as MSG_USERAUTH_GSSAPI_TOKEN,
)
from geossh._facade.common import (
    MSG_USERAUTH_INFO_REQUEST as MSG_USERAUTH_INFO_REQUEST,
)
from geossh._facade.common import (
    MSG_USERAUTH_INFO_RESPONSE as MSG_USERAUTH_INFO_RESPONSE,
)
from geossh._facade.common import (
    MSG_USERAUTH_PK_OK as MSG_USERAUTH_PK_OK,
)
from geossh._facade.common import (
    MSG_USERAUTH_REQUEST as MSG_USERAUTH_REQUEST,
)
from geossh._facade.common import (
    MSG_USERAUTH_SUCCESS as MSG_USERAUTH_SUCCESS,
)
from geossh._facade.common import (
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED as OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
)
from geossh._facade.common import (
    OPEN_FAILED_CONNECT_FAILED as OPEN_FAILED_CONNECT_FAILED,
)
from geossh._facade.common import (
    OPEN_FAILED_RESOURCE_SHORTAGE as OPEN_FAILED_RESOURCE_SHORTAGE,
)
from geossh._facade.common import (
    OPEN_FAILED_UNKNOWN_CHANNEL_TYPE as OPEN_FAILED_UNKNOWN_CHANNEL_TYPE,
)
from geossh._facade.common import (
    OPEN_SUCCEEDED as OPEN_SUCCEEDED,
)
from geossh._facade.common import (
    WARNING as WARNING,
)
from geossh._facade.common import (
    byte_chr as byte_chr,
)
from geossh._facade.common import (
    byte_mask as byte_mask,
)
from geossh._facade.common import (
    byte_ord as byte_ord,
)
from geossh._facade.common import (
    cMSG_CHANNEL_CLOSE as cMSG_CHANNEL_CLOSE,
)
from geossh._facade.common import (
    cMSG_CHANNEL_DATA as cMSG_CHANNEL_DATA,
)
from geossh._facade.common import (
    cMSG_CHANNEL_EOF as cMSG_CHANNEL_EOF,
)
from geossh._facade.common import (
    cMSG_CHANNEL_EXTENDED_DATA as cMSG_CHANNEL_EXTENDED_DATA,
)
from geossh._facade.common import (
    cMSG_CHANNEL_FAILURE as cMSG_CHANNEL_FAILURE,
)
from geossh._facade.common import (
    cMSG_CHANNEL_OPEN as cMSG_CHANNEL_OPEN,
)
from geossh._facade.common import (
    cMSG_CHANNEL_OPEN_FAILURE as cMSG_CHANNEL_OPEN_FAILURE,
)
from geossh._facade.common import (
    cMSG_CHANNEL_OPEN_SUCCESS as cMSG_CHANNEL_OPEN_SUCCESS,
)
from geossh._facade.common import (
    cMSG_CHANNEL_REQUEST as cMSG_CHANNEL_REQUEST,
)
from geossh._facade.common import (
    cMSG_CHANNEL_SUCCESS as cMSG_CHANNEL_SUCCESS,
)
from geossh._facade.common import (
    cMSG_CHANNEL_WINDOW_ADJUST as cMSG_CHANNEL_WINDOW_ADJUST,
)
from geossh._facade.common import (
    cMSG_DEBUG as cMSG_DEBUG,
)
from geossh._facade.common import (
    cMSG_DISCONNECT as cMSG_DISCONNECT,
)
from geossh._facade.common import (
    cMSG_EXT_INFO as cMSG_EXT_INFO,
)
from geossh._facade.common import (
    cMSG_GLOBAL_REQUEST as cMSG_GLOBAL_REQUEST,
)
from geossh._facade.common import (
    cMSG_IGNORE as cMSG_IGNORE,
)
from geossh._facade.common import (
    cMSG_KEXINIT as cMSG_KEXINIT,
)
from geossh._facade.common import (
    cMSG_NEWKEYS as cMSG_NEWKEYS,
)
from geossh._facade.common import (
    cMSG_REQUEST_FAILURE as cMSG_REQUEST_FAILURE,
)
from geossh._facade.common import (
    cMSG_REQUEST_SUCCESS as cMSG_REQUEST_SUCCESS,
)
from geossh._facade.common import (
    cMSG_SERVICE_ACCEPT as cMSG_SERVICE_ACCEPT,
)
from geossh._facade.common import (
    cMSG_SERVICE_REQUEST as cMSG_SERVICE_REQUEST,
)
from geossh._facade.common import (
    cMSG_UNIMPLEMENTED as cMSG_UNIMPLEMENTED,
)
from geossh._facade.common import (
    cMSG_USERAUTH_BANNER as cMSG_USERAUTH_BANNER,
)
from geossh._facade.common import (
    cMSG_USERAUTH_FAILURE as cMSG_USERAUTH_FAILURE,
)
from geossh._facade.common import (
    cMSG_USERAUTH_GSSAPI_ERROR as cMSG_USERAUTH_GSSAPI_ERROR,
)
from geossh._facade.common import (
    cMSG_USERAUTH_GSSAPI_ERRTOK as cMSG_USERAUTH_GSSAPI_ERRTOK,
)
from geossh._facade.common import (
    cMSG_USERAUTH_GSSAPI_EXCHANGE_COMPLETE as cMSG_USERAUTH_GSSAPI_EXCHANGE_COMPLETE,
)
from geossh._facade.common import (
    cMSG_USERAUTH_GSSAPI_MIC as cMSG_USERAUTH_GSSAPI_MIC,
)
from geossh._facade.common import (
    cMSG_USERAUTH_GSSAPI_RESPONSE as cMSG_USERAUTH_GSSAPI_RESPONSE,
)
from geossh._facade.common import (
    cMSG_USERAUTH_GSSAPI_TOKEN as cMSG_USERAUTH_GSSAPI_TOKEN,
)
from geossh._facade.common import (
    cMSG_USERAUTH_INFO_REQUEST as cMSG_USERAUTH_INFO_REQUEST,
)
from geossh._facade.common import (
    cMSG_USERAUTH_INFO_RESPONSE as cMSG_USERAUTH_INFO_RESPONSE,
)
from geossh._facade.common import (
    cMSG_USERAUTH_PK_OK as cMSG_USERAUTH_PK_OK,
)
from geossh._facade.common import (
    cMSG_USERAUTH_REQUEST as cMSG_USERAUTH_REQUEST,
)
from geossh._facade.common import (
    cMSG_USERAUTH_SUCCESS as cMSG_USERAUTH_SUCCESS,
)
from geossh._facade.common import (
    cr_byte as cr_byte,
)
from geossh._facade.common import (
    cr_byte_value as cr_byte_value,
)
from geossh._facade.common import (
    crlf as crlf,
)
from geossh._facade.common import (
    four_byte as four_byte,
)
from geossh._facade.common import (
    io_sleep as io_sleep,
)
from geossh._facade.common import (
    linefeed_byte as linefeed_byte,
)
from geossh._facade.common import (
    linefeed_byte_value as linefeed_byte_value,
)
from geossh._facade.common import (
    max_byte as max_byte,
)
from geossh._facade.common import (
    o70 as o70,
)
from geossh._facade.common import (
    o600 as o600,
)
from geossh._facade.common import (
    o644 as o644,
)
from geossh._facade.common import (
    o660 as o660,
)
from geossh._facade.common import (
    o666 as o666,
)
from geossh._facade.common import (
    o700 as o700,
)
from geossh._facade.common import (
    o777 as o777,
)
from geossh._facade.common import (
    one_byte as one_byte,
)
from geossh._facade.common import (
    x80000000 as x80000000,
)
from geossh._facade.common import (
    xffffffff as xffffffff,
)
from geossh._facade.common import (
    zero_byte as zero_byte,
)
