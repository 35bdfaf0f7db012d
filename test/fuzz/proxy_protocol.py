"""proxy_protocol.py — a small reference for the PROXY protocol (HAProxy's proxy-protocol.txt),
written from the spec, independently of nsproxy's native code: what header a proxy must send
for a client at `src` that connected to `dst`, and a parser that splits one off a stream."""
import ipaddress
import struct

V2_SIGNATURE = b'\r\n\r\n\x00\r\nQUIT\n'


def expected(version, src, dst):
    """The header for TCP from src (ip, port) to dst (ip, port)."""
    s, d = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
    if version == 'v1':
        proto = 'TCP4' if s.version == 4 else 'TCP6'
        return f'PROXY {proto} {s} {d} {src[1]} {dst[1]}\r\n'.encode()
    family = 0x11 if s.version == 4 else 0x21
    addresses = s.packed + d.packed + struct.pack('!HH', src[1], dst[1])
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack('!H', len(addresses)) + addresses


def length(prefix):
    """How long the header at the start of `prefix` is: a number, None (need more), or ValueError."""
    if prefix.startswith(V2_SIGNATURE[:len(prefix)]) and len(prefix) < 16:
        return None
    if prefix.startswith(V2_SIGNATURE):
        if prefix[12] >> 4 != 2:
            raise ValueError(f'v2: version nibble {prefix[12] >> 4}')
        return 16 + struct.unpack('!H', prefix[14:16])[0]
    if not b'PROXY '.startswith(prefix[:6]):
        raise ValueError(f'no PROXY header: {prefix[:16]!r}')
    end = prefix.find(b'\r\n')
    if end < 0:
        if len(prefix) >= 107:
            raise ValueError('v1: no CRLF within 107 bytes')
        return None
    return end + 2
