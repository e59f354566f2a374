"""An independent check of C2SP signed-note and tlog-cosignature (Ed25519, cosignature/v1),
written from the C2SP texts, not from keyledger's Rust code. Ed25519 itself comes from
scripts/independent_verify.py (RFC 8032 arithmetic in Python).

    cosignature_check.py NOTE LOG_VKEY WITNESS_VKEY...

Prints one JSON object: the log signature's validity and, per witness vkey, the cosignature
timestamp found (or null). Exits 1 if any line by a known key fails to verify."""

import base64
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from independent_verify import verify_signature  # noqa: E402


def vkey(text):
    """signed-note verifier key: <name>+<hex key ID>+<base64(type || key)>."""
    name, key_id, key = text.split("+", 2)
    raw = base64.b64decode(key, validate=True)
    ty, pk = raw[0], raw[1:]
    if len(pk) != 32:
        raise ValueError("not an Ed25519 key")
    want = hashlib.sha256(name.encode() + b"\n" + bytes([ty]) + pk).digest()[:4]
    if want.hex() != key_id:
        raise ValueError("key ID does not match")
    return name, ty, pk, want


def split_note(note):
    """signed-note: the text ends at the last blank line; then signature lines
    '— <name> <base64(key ID || signature)>'."""
    i = note.rfind("\n\n")
    text, sigs = note[: i + 1], note[i + 2 :]
    out = []
    for line in sigs.split("\n")[:-1]:
        assert line.startswith("\u2014 ")
        name, b64 = line[2:].split(" ")
        blob = base64.b64decode(b64, validate=True)
        out.append((name, blob[:4], blob[4:]))
    return text, out


def main():
    note = open(sys.argv[1], encoding="utf-8").read()
    log = vkey(sys.argv[2])
    witnesses = [vkey(v) for v in sys.argv[3:]]
    text, sigs = split_note(note)
    result = {"log": False, "witnesses": {}}
    bad = False
    for name, key_id, sig in sigs:
        if (name, key_id) == (log[0], log[3]) and log[1] == 0x01:
            ok = len(sig) == 64 and verify_signature(log[2], sig, text.encode())
            result["log"] = result["log"] or ok
            bad |= not ok
        for w in witnesses:
            if (name, key_id) != (w[0], w[3]) or w[1] != 0x04:
                continue
            # tlog-cosignature: timestamped_signature = u64 big-endian time || Ed25519 sig,
            # over "cosignature/v1\n" "time <T>\n" and the note text.
            if len(sig) != 72:
                bad = True
                continue
            t = int.from_bytes(sig[:8], "big")
            msg = b"cosignature/v1\ntime " + str(t).encode() + b"\n" + text.encode()
            if verify_signature(w[2], sig[8:], msg):
                result["witnesses"][w[0]] = t
            else:
                bad = True
    print(json.dumps(result))
    sys.exit(1 if bad else 0)


main()
