# ruff: noqa: SIM105, SIM115, UP  (MicroPython code: no contextlib, no exception chaining)
# mypy: ignore-errors
# Runs ON THE BOARD (MicroPython), loaded by havel.provisioning.transport.Board.call.
# File helpers for flashing: hashes computed on the board, directories, chunked writes that land
# atomically (write to "<path>.part", then rename), so a pulled cable never leaves half a module.
import binascii
import hashlib
import os


def hv_sha256(path):
    """Hex SHA-256 of a file on the board, or None when it does not exist."""
    h = hashlib.sha256()
    buf = bytearray(512)
    mv = memoryview(buf)
    try:
        f = open(path, "rb")
    except OSError:
        return None
    try:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    finally:
        f.close()
    return binascii.hexlify(h.digest()).decode()


def hv_hashes(paths):
    return [hv_sha256(p) for p in paths]


def hv_makedirs(path):
    cur = ""
    for part in path.split("/"):
        if not part:
            continue
        cur = cur + "/" + part if cur else part
        try:
            os.mkdir(cur)
        except OSError:
            pass  # exists already
    return True


_hv_file = None


def hv_open(path):
    global _hv_file
    d = path.rsplit("/", 1)[0] if "/" in path else ""
    if d:
        hv_makedirs(d)
    _hv_file = open(path + ".part", "wb")
    return True


def hv_write(b64):
    return _hv_file.write(binascii.a2b_base64(b64.encode()))


def hv_commit(path):
    global _hv_file
    _hv_file.close()
    _hv_file = None
    try:
        os.remove(path)
    except OSError:
        pass
    os.rename(path + ".part", path)
    return hv_sha256(path)


def hv_remove(path):
    try:
        os.remove(path)
        return True
    except OSError:
        return False


def hv_read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def hv_write_text(path, text):
    hv_open(path)
    _hv_file.write(text)
    return hv_commit(path)


def hv_info():
    import sys

    uid = None
    try:
        import machine

        uid = binascii.hexlify(machine.unique_id()).decode()
    except ImportError:
        pass
    free = None
    try:
        st = os.statvfs("/") if not hasattr(os, "getcwd") else os.statvfs(os.getcwd())
        free = st[0] * st[3]
    except (OSError, AttributeError):
        pass
    impl = sys.implementation
    return {
        "version": ".".join(str(v) for v in impl.version[:3]),
        "machine": getattr(impl, "_machine", ""),
        "mpy": getattr(impl, "_mpy", 0),
        "unique_id": uid,
        "free_bytes": free,
    }
