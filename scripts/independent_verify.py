#!/usr/bin/env python3
"""An independent keyledger verifier, written from ledger-format.md alone (no Rust code read).

It checks sections 1-6, 8 and 9 (format, canonical bodies, sequence, chain, time,
signatures, genesis, signer enrolment and revocation, recorded checkpoints, genesis and
head anchors); it does not re-check policy (section 7). Usage:

    independent_verify.py LEDGER [--expect-genesis HEX] [--expect-head HEX]
    independent_verify.py --fixtures DIR     # every verdict in DIR/verdicts.json

Needs: pip install blake3 msgpack cryptography
"""
import hashlib
import json
import struct
import sys

import blake3
import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CONTEXT = "keyledger 2026-11-22 event hash v1"
FIELDS = {  # section 5: tag -> number of fields
    "genesis": 3, "signer-enrolled": 2, "signer-revoked": 2, "user-created": 2,
    "user-deleted": 1, "permission-granted": 2, "permission-revoked": 2, "key-created": 6,
    "temporary-issued": 5, "secret-revealed": 3, "key-disabled": 1, "key-enabled": 1,
    "key-deleted": 1, "auth-succeeded": 1, "auth-failed": 2, "action-denied": 4, "checkpoint-recorded": 2,
    "log-repaired": 4,
}


def mth(leaves):
    """RFC 9162 Merkle tree hash with SHA-256 over 32-byte event hashes (section 9.1)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def verify(data, expect_genesis=None, expect_head=None):
    """Returns a list of (problem, seq or None, offset, message)."""
    problems = []
    if len(data) < 16:
        return [("format", None, 0, "short header")]
    if data[:8] != b"KEYLEDGR" or struct.unpack(">H", data[8:10])[0] != 1 or any(data[10:16]):
        return [("format", None, 0, "bad header")]
    off, index = 16, 0
    last_seq, prev_hash, last_time = None, bytes(32), None
    signers = {}  # public key -> [principal, revoked]
    deleted = set()
    hashes = []
    while off < len(data):
        if len(data) - off < 4:
            problems.append(("torn", None, off, "partial length"))
            break
        (n,) = struct.unpack(">I", data[off:off + 4])
        if n == 0 or n > 65536:
            problems.append(("format", None, off, f"bad length {n}"))
            break
        if len(data) - off < 4 + n + 64:
            problems.append(("torn", None, off, "partial frame"))
            break
        body, sig = data[off + 4:off + 4 + n], data[off + 4 + n:off + 4 + n + 64]
        h = blake3.blake3(body, derive_key_context=CONTEXT).digest()
        hashes.append(h)
        try:
            ev = msgpack.unpackb(body, raw=False)
            ok = (isinstance(ev, list) and len(ev) == 5 and msgpack.packb(ev, use_bin_type=True) == body
                  and isinstance(ev[4], dict) and len(ev[4]) == 1)
            tag, fields = next(iter(ev[4].items())) if ok else (None, None)
            ok = ok and FIELDS.get(tag) == (len(fields) if isinstance(fields, list) else -1)
            ok = ok and isinstance(ev[2], bytes) and len(ev[2]) == 32 and isinstance(ev[3], bytes) and len(ev[3]) == 32
        except Exception:
            ok = False
        if not ok:
            problems.append(("format", None, off, "undecodable or non-canonical body"))
            prev_hash, last_seq = h, (0 if last_seq is None else last_seq + 1)
            off, index = off + 4 + n + 64, index + 1
            continue
        seq, time, prev, signer = ev[0], ev[1], ev[2], ev[3]
        if tag == "checkpoint-recorded" and (fields[0] != len(hashes) - 1 or fields[1] != mth(hashes[:-1])):
            problems.append(("anchor", seq, off, "recorded checkpoint does not match the events before it"))
        want = 0 if last_seq is None else last_seq + 1
        if seq != want:
            problems.append(("sequence", seq, off, f"expected {want}"))
        if prev != prev_hash:
            problems.append(("chain", seq, off, "prev mismatch"))
        if last_time is not None and time < last_time:
            problems.append(("time", seq, off, "time goes backwards"))
        try:
            Ed25519PublicKey.from_public_bytes(signer).verify(sig, h)
            sig_ok = True
        except (InvalidSignature, ValueError):
            sig_ok = False
            problems.append(("signature", seq, off, "bad signature"))
        if index == 0:
            if tag != "genesis" or fields[2] != signer:
                problems.append(("genesis", seq, off, "frame 0 is not a genesis signed by its key"))
            elif sig_ok:
                signers[signer] = [fields[1], False]
        elif tag == "genesis":
            problems.append(("genesis", seq, off, "late genesis"))
        elif sig_ok:
            s = signers.get(signer)
            if s is None or s[1] or s[0] in deleted:
                problems.append(("signer", seq, off, "signer not enrolled, revoked, or principal deleted"))
            elif tag == "signer-enrolled" and fields[1] not in signers:
                signers[fields[1]] = [fields[0], False]
            elif tag == "signer-revoked" and fields[1] in signers:
                signers[fields[1]][1] = True
            elif tag == "user-deleted":
                deleted.add(fields[0])
            elif tag == "log-repaired" and fields[0] != off:
                problems.append(("policy", seq, off, "log-repaired does not sit at the offset it records"))
        prev_hash, last_seq = h, seq
        last_time = time if last_time is None else max(last_time, time)
        off, index = off + 4 + n + 64, index + 1
    if index == 0 and not problems:
        problems.append(("genesis", None, off, "no events"))
    if expect_genesis and (not hashes or hashes[0].hex() != expect_genesis):
        problems.append(("anchor", None, 16, "genesis anchor mismatch"))
    if expect_head and expect_head not in [x.hex() for x in hashes]:
        problems.append(("anchor", None, off, "head anchor not found"))
    return problems


def anchors(args):
    a = {"expect_genesis": None, "expect_head": None}
    for i in range(0, len(args) - 1, 2):
        a[args[i].lstrip("-").replace("-", "_")] = args[i + 1]
    return a


def main():
    if sys.argv[1:2] == ["--fixtures"]:
        d = sys.argv[2]
        verdicts = json.load(open(f"{d}/verdicts.json"))
        bad = checked = 0
        for v in verdicts:
            if v["file"].startswith("policy-"):
                continue  # policy (section 7) is not re-checked here
            checked += 1
            probs = verify(open(f"{d}/{v['file']}", "rb").read(), **anchors(v["args"]))
            got = {p[0] for p in probs}
            first = next((p[1] for p in probs if p[1] is not None), None)
            ok = (not probs) == (v["exit"] == 0) and got == set(v["problems"]) and first == v["first_seq"]
            print(f"{'ok  ' if ok else 'FAIL'} {v['file']} {' '.join(v['args'])}: {sorted(got)} first {first}")
            bad += not ok
        print(f"{checked - bad} of {checked} verdicts agree, {bad} disagree "
              f"({len(verdicts) - checked} policy verdicts not checked here)")
        return 1 if bad else 0
    probs = verify(open(sys.argv[1], "rb").read(), **anchors(sys.argv[2:]))
    for p in probs:
        print(f"{p[0]} seq={p[1]} offset={p[2]}: {p[3]}")
    print("OK" if not probs else "FAILED")
    return 1 if probs else 0


if __name__ == "__main__":
    sys.exit(main())
