"""The downlinks every node understands (FPorts 10, 11, 12), decoded: payload/common.py
decode_down() loads this module for one downlink and releases it after."""

from payload import common
from payload.fields import PayloadError, check_header, get_u16


def decode_down(fport, p):
    """The common downlinks as the host codec's data dicts; None for a port that is not common."""
    if fport == common.FPORT_SET_INTERVAL:
        check_header(p, 3)
        s = get_u16(p, 1)
        if s < common.INTERVAL_MIN_S or s > common.INTERVAL_MAX_S:
            raise PayloadError("interval: %d s out of range 60..43200" % s)
        return {"interval": s}
    if fport == common.FPORT_REQUEST_STATUS:
        check_header(p, 1)
        return {}
    if fport == common.FPORT_REBOOT:
        check_header(p, 2)
        return {"delay": p[1]}
    return None
