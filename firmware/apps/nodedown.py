"""What a Node does with a downlink its app did not take (apps/node.py handle_downlink() loads
this module for it and releases it after, so its code is not in RAM between downlinks): the
common ports (interval, status request, reboot), a refused downlink's log line, and the reboot
itself when it is due."""

from payload import common
from payload.fields import PayloadError


def handle(node, fport, payload, now_ms, err=None):
    """Act on a downlink the app did not take (err: the PayloadError the app's decoder raised);
    bad ones are logged and ignored (never acted on half-way)."""
    try:
        if err is not None:
            raise err
        d = common.decode_down(fport, payload)
    except PayloadError as e:
        node._log("downlink on FPort %d refused: %s" % (fport, e))
        return False
    if d is None:
        node._log("downlink on FPort %d ignored: not a port of this node" % fport)
        return False
    if fport == common.FPORT_SET_INTERVAL:
        node.interval_s = d["interval"]
        if node._rec is not None:
            node._rec.save(bytes(((node.interval_s >> 8) & 0xFF, node.interval_s & 0xFF)))
        node.next_report_ms = now_ms + node.app.interval_s(node.interval_s) * 1000
    elif fport == common.FPORT_REQUEST_STATUS:
        node.status_due = True
    elif fport == common.FPORT_REBOOT:
        node.reboot_at_ms = now_ms + d["delay"] * 1000
    return True


def reboot(node):
    """Reset requested by downlink: fail safe, save, then reset (board) or flag (host)."""
    node.app.shutdown()
    node.app.save()
    node.rebooted = True
    node.reboot_at_ms = None
    node._log("rebooting on request")
    if node.on_reboot is not None:
        node.on_reboot()
