#!/usr/bin/env python3
"""An independent keyledger verifier, written from ledger-format.md ALONE.

No Rust source of keyledger was read to write it: every rule below cites the section of
ledger-format.md (versions 1 and 2: version 1 up to its revision 2026-11-24 (2), which adds
`key-rotated`, and version 2, which adds the `server` permission, the request element of
an event written through a server, check 7a and the actor rule of §6.2) it implements. Where the specification left a choice open, the comment says "SPEC GAP" and
states the reading taken.

It implements:

  §1  header            magic, version 1 or 2, reserved bytes
  §2  frames            body_len 1..=65536, torn frames, unframable bytes
  §3  event hash        BLAKE3 derive-key over the body as stored, the chain of `prev`
  §4  event body        canonical MessagePack (decode, type-check, re-encode, compare bytes)
  §4.1 requests (v2)    the 6th body element, the request hash, the requested action
  §5  actions           every tag and the type of every field
  §6.1 signatures       the ZIP-215 rule, with Ed25519 arithmetic written out here in pure
                        Python (no OpenSSL / `cryptography`: it applies a different rule)
  §6.2 signing keys     acceptable keys; who may sign which event
  §7  state and policy  the whole fold, every row of §7.3, §7.1 bounds, §7.2 credential scan
  §8  verification      problem kinds, seqs, offsets, which checks apply to which frames,
                        check 7a (`request`) for version 2
  §9  trust anchors     --expect-genesis, --expect-head, --checkpoint (strict C2SP note)
  §11 credentials       key ID / secret / token checksums (used by §7.1 and §7.2)

Usage:

    independent_verify.py LEDGER [--expect-genesis HEX] [--expect-head HEX] [--checkpoint FILE]
    independent_verify.py --fixtures DIR     # every verdict in DIR/verdicts.json
                                             # (and DIR/ed25519-vectors.json if present)

Prints one line per finding, `problem seq=S offset=O: message` (seq `-` when the frame does
not decode or the finding is about the whole file), then OK or FAILED; exits 0 or 1
(2 for bad usage). Needs only: pip install blake3 msgpack
"""
import base64
import hashlib
import json
import os
import re
import struct
import sys
import time as _time

import blake3
import msgpack

# ---------------------------------------------------------------------------------------
# §3 Event hash, §11 derive-key contexts
# ---------------------------------------------------------------------------------------

EVENT_HASH_CONTEXT = "keyledger 2026-11-22 event hash v1"
REQUEST_HASH_CONTEXT = "keyledger 2026-11-24 request v1"                 # §4.1, version 2
CHECKSUM_CONTEXT = "keyledger 2026-11-22 credential checksum v1"


def event_hash(body):
    """§3: BLAKE3 in derive-key mode over the exact body bytes as stored."""
    return blake3.blake3(body, derive_key_context=EVENT_HASH_CONTEXT).digest()


# ---------------------------------------------------------------------------------------
# §6.1 / §6.2 Ed25519, written out (RFC 8032 curve, extended coordinates)
# ---------------------------------------------------------------------------------------

P = 2**255 - 19                                           # field prime p
L = 2**252 + 27742317777372353535851937790883648493       # group order L (§6.1)
D = (-121665 * pow(121666, P - 2, P)) % P                 # curve constant d
D2 = (2 * D) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)                         # a square root of -1 mod p

IDENTITY = (0, 1, 1, 0)                                   # (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z


def _recover_x(y, sign):
    """x for a given y (mod p) with the given sign bit, or None if no x exists."""
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P                               # never 0: -1/d is not a square
    x = (u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P)) % P
    vxx = (v * x * x) % P
    if vxx == u:
        pass
    elif vxx == (-u) % P:
        x = (x * SQRT_M1) % P
    else:
        return None                                       # y has no x: not a curve point
    if x != 0 and (x & 1) != sign:
        x = P - x
    return x


def decode_point_relaxed(b):
    """§6.1: the decoding of RFC 8032 §5.1.3 relaxed in the two stated ways.

    y is the low 255 bits taken modulo p (values p..2^255-1 accepted); x = 0 with sign bit 1
    is accepted as x = 0. Returns an extended point or None (no x exists for y)."""
    n = int.from_bytes(b, "little")
    sign = n >> 255
    y = (n & ((1 << 255) - 1)) % P
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, (x * y) % P)


def decode_point_strict(b):
    """§6.2: RFC 8032 §5.1.3 exactly: y < p, and not x = 0 with sign bit 1."""
    n = int.from_bytes(b, "little")
    sign = n >> 255
    y = n & ((1 << 255) - 1)
    if y >= P:
        return None
    x = _recover_x(y, sign)
    if x is None or (x == 0 and sign == 1):
        return None
    return (x, y, 1, (x * y) % P)


def point_add(p1, p2):
    """Unified (complete, for a = -1 and non-square d) addition in extended coordinates."""
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = ((y1 - x1) * (y2 - x2)) % P
    b = ((y1 + x1) * (y2 + x2)) % P
    c = (t1 * D2 * t2) % P
    d = (z1 * 2 * z2) % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return ((e * f) % P, (g * h) % P, (f * g) % P, (e * h) % P)


def point_neg(pt):
    x, y, z, t = pt
    return ((-x) % P, y, z, (-t) % P)


def point_mul(k, pt):
    """[k]pt by double-and-add (k >= 0)."""
    q = IDENTITY
    for i in range(k.bit_length() - 1, -1, -1):
        q = point_add(q, q)
        if (k >> i) & 1:
            q = point_add(q, pt)
    return q


def is_identity(pt):
    x, y, z, _ = pt
    return x % P == 0 and (y - z) % P == 0


_BY = (4 * pow(5, P - 2, P)) % P
_BX = _recover_x(_BY, 0)
BASE = (_BX, _BY, 1, (_BX * _BY) % P)                     # B, the RFC 8032 base point

_sig_cache = {}


def verify_signature(a_bytes, sig, msg):
    """§6.1, the signature rule (ZIP-215), exactly as written:

    S < L; A and R decode under the relaxed decoding; k = SHA-512(R || A || M) over the bytes
    as given, mod L; valid iff [8]([S]B - R - [k]A) is the identity. Nothing else is checked."""
    key = (bytes(a_bytes), bytes(sig), bytes(msg))
    if key in _sig_cache:
        return _sig_cache[key]
    ok = False
    if len(a_bytes) == 32 and len(sig) == 64:
        r_bytes, s = sig[:32], int.from_bytes(sig[32:], "little")
        a_pt = decode_point_relaxed(a_bytes)
        r_pt = decode_point_relaxed(r_bytes)
        if s < L and a_pt is not None and r_pt is not None:
            k = int.from_bytes(hashlib.sha512(r_bytes + a_bytes + msg).digest(), "little") % L
            # [S]B + [k](-A) by a joint double-and-add (Straus), then - R, then [8].
            neg_a = point_neg(a_pt)
            both = point_add(BASE, neg_a)
            q = IDENTITY
            for i in range(max(s.bit_length(), k.bit_length()) - 1, -1, -1):
                q = point_add(q, q)
                bs, bk = (s >> i) & 1, (k >> i) & 1
                if bs and bk:
                    q = point_add(q, both)
                elif bs:
                    q = point_add(q, BASE)
                elif bk:
                    q = point_add(q, neg_a)
            q = point_add(q, point_neg(r_pt))
            for _ in range(3):
                q = point_add(q, q)
            ok = is_identity(q)
    _sig_cache[key] = ok
    return ok


_acceptable_cache = {}


def key_acceptable(a_bytes):
    """§6.2: canonical RFC 8032 encoding, not the identity, and [L]A is the identity."""
    a_bytes = bytes(a_bytes)
    if a_bytes not in _acceptable_cache:
        pt = decode_point_strict(a_bytes) if len(a_bytes) == 32 else None
        _acceptable_cache[a_bytes] = (
            pt is not None and not is_identity(pt) and is_identity(point_mul(L, pt)))
    return _acceptable_cache[a_bytes]


# ---------------------------------------------------------------------------------------
# §11 Credentials (key IDs, secrets, tokens)
# ---------------------------------------------------------------------------------------

BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# form -> (prefix, number of random characters, alphabet)
FORMS = {
    "permanent": ("KLAK", 16, BASE32),
    "temporary": ("KLST", 16, BASE32),
    "secret": ("klsk_", 40, BASE62),
    "token": ("kltk_", 64, BASE62),
}


def checksum(text, alphabet):
    """§11: first 4 bytes of BLAKE3-derive-key(checksum context, text), big-endian u32;
    >> 2 for base32 forms; written as exactly 6 digits, most significant first."""
    h = struct.unpack(">I", blake3.blake3(text.encode("ascii"),
                                          derive_key_context=CHECKSUM_CONTEXT).digest()[:4])[0]
    if alphabet is BASE32:
        h >>= 2
    base = len(alphabet)
    digits = []
    for _ in range(6):
        h, r = divmod(h, base)
        digits.append(alphabet[r])
    return "".join(reversed(digits))


def well_formed(s, form):
    """§11: prefix, exactly the right number of characters of the alphabet, valid checksum."""
    prefix, n, alphabet = FORMS[form]
    if len(s) != len(prefix) + n + 6 or not s.startswith(prefix):
        return False
    body = s[len(prefix):]
    if any(c not in alphabet for c in body):
        return False
    return checksum(s[:len(prefix) + n], alphabet) == body[n:]


def contains_credential(s):
    """§7.2: does s contain a well-formed secret or security token anywhere inside it?

    Any substring that is one counts, whatever comes before or after it (alphabet
    characters around a candidate do not disqualify it)."""
    for form in ("secret", "token"):
        prefix, n, _ = FORMS[form]
        i = s.find(prefix)
        while i >= 0:
            if well_formed(s[i:i + len(prefix) + n + 6], form):
                return True
            i = s.find(prefix, i + 1)
    return False


# ---------------------------------------------------------------------------------------
# §7.1 Names and text
# ---------------------------------------------------------------------------------------

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def is_name(s):
    """§7.1: [A-Za-z0-9][A-Za-z0-9._@-]{0,63}, and no `klsk_` / `kltk_` inside."""
    return (isinstance(s, str) and NAME_RE.fullmatch(s) is not None
            and "klsk_" not in s and "kltk_" not in s)


# Unicode White_Space (PropList.txt). Python's str.strip()/isspace() use a different set
# (they include U+001C..U+001F, which are not White_Space), so the set is written out.
WHITE_SPACE = frozenset(
    [chr(c) for c in range(0x09, 0x0E)] + [" ", "\u0085", "\u00a0", "\u1680"]
    + [chr(c) for c in range(0x2000, 0x200B)]
    + ["\u2028", "\u2029", "\u202f", "\u205f", "\u3000"])


def strip_white_space(s):
    i, j = 0, len(s)
    while i < j and s[i] in WHITE_SPACE:
        i += 1
    while j > i and s[j - 1] in WHITE_SPACE:
        j -= 1
    return s[i:j]


def utf8_len(s):
    return len(s.encode("utf-8"))


# ---------------------------------------------------------------------------------------
# §4 / §5 Event body: canonical MessagePack and the actions
# ---------------------------------------------------------------------------------------

PERMISSIONS = ("admin", "manage-keys", "manage-own-keys")
# §4: "and in a version-2 file also `server`"; in a version-1 file it is a format error (§1).
PERMISSIONS_V2 = PERMISSIONS + ("server",)

# §5: tag -> fields in order, as (name, type). Types: bin16, bin32, str, str?, bool, uint,
# int, perm (a str that is one of PERMISSIONS, §4).
ACTIONS = {
    "genesis": [("ledger_id", "bin16"), ("account", "str"), ("public_key", "bin32")],
    "signer-enrolled": [("principal", "str"), ("public_key", "bin32")],
    "signer-revoked": [("principal", "str"), ("public_key", "bin32")],
    "user-created": [("name", "str"), ("federated", "bool")],
    "user-deleted": [("name", "str")],
    "permission-granted": [("principal", "str"), ("permission", "perm")],
    "permission-revoked": [("principal", "str"), ("permission", "perm")],
    "key-created": [("key_id", "str"), ("user", "str"), ("fingerprint", "bin32"),
                    ("scenario", "str"), ("confirmed_necessary", "bool"),
                    ("root_key_allowed", "bool")],
    "temporary-issued": [("key_id", "str"), ("user", "str"), ("fingerprint", "bin32"),
                         ("token_fingerprint", "bin32"), ("expires", "int")],
    "secret-revealed": [("key_id", "str"), ("to", "str"), ("channel", "str")],
    "key-disabled": [("key_id", "str")],
    "key-enabled": [("key_id", "str")],
    "key-deleted": [("key_id", "str")],
    "auth-succeeded": [("key_id", "str")],
    "auth-failed": [("key_id", "str"), ("reason", "str")],
    "action-denied": [("attempted", "str"), ("user", "str?"), ("key_id", "str?"),
                      ("reason", "str")],
    "checkpoint-recorded": [("size", "uint"), ("root", "bin32")],
    "log-repaired": [("offset", "uint"), ("removed_bytes", "uint"),
                     ("removed_blake3", "bin32"), ("quarantine", "str")],
    # §5, revision 2026-11-24 (2). A ledger holding it is a format error for a verifier of
    # the earlier revision (unknown tag, §14).
    "key-rotated": [("old_key_id", "str"), ("new_key_id", "str")],
    # §5, version 2 revision 2026-12-02 (2); any version may hold it.
    "leak-reported": [("key_id", "str"), ("source", "str"), ("reason", "str")],
    # §5, version 2 revision 2026-12-03 (R13): version 2 only (§1).
    "protection-enabled": [("principal", "str"), ("factor", "factor")],
    "protection-disabled": [("principal", "str")],
    # §5 (R11), version 2 only.
    "auth-failures-summarized": [("key_id", "str"), ("count", "uint"), ("first", "int"),
                                 ("last", "int")],
}

# §1: what only a version-2 file may hold (besides `server` and requests).
V2_TAGS = ("protection-enabled", "protection-disabled", "auth-failures-summarized")

# §7.3 R13: the protected actions.
PROTECTED = ("key-created", "temporary-issued", "key-disabled", "key-enabled", "key-deleted",
             "signer-enrolled", "signer-revoked", "permission-granted", "permission-revoked",
             "user-deleted", "protection-disabled")
TOTP_STEP_US = 30_000_000


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def type_ok(v, t, perms=PERMISSIONS):
    """§4/§5 field types. An `int` (time, expires) is a signed 64-bit integer
    (-2^63..2^63-1: a uint 64 of 2^63 or more is a format error), a `uint` 0..2^64-1; a
    permission string other than the three of §4 is a format error."""
    if t == "bin16":
        return isinstance(v, bytes) and len(v) == 16
    if t == "bin32":
        return isinstance(v, bytes) and len(v) == 32
    if t == "str":
        return isinstance(v, str)
    if t == "str?":
        return v is None or isinstance(v, str)
    if t == "bool":
        return isinstance(v, bool)
    if t == "uint":
        return _is_int(v) and 0 <= v < 2**64
    if t == "int":
        return _is_int(v) and -2**63 <= v < 2**63
    if t == "perm":
        return isinstance(v, str) and v in perms
    if t == "factor":
        # §4.2 / §5: exactly `totp`; any other string is a format error.
        return v == "totp"
    raise AssertionError(t)


class FormatError(Exception):
    pass


class Request:
    """§4.1 (version 2): the request element of an event written through a server."""

    def __init__(self, key, time, nonce, refused, sig):
        self.key, self.time, self.nonce, self.sig = key, time, nonce, sig
        self.refused = refused            # None, or the decoded action map {tag: [fields]}
        self.refused_tag = self.refused_fields = None
        if refused is not None:
            (self.refused_tag, values), = refused.items()
            self.refused_fields = dict((n, v) for (n, _), v in zip(ACTIONS[self.refused_tag], values))


class Event:
    """A decoded body (§4): seq, time, prev, signer, tag and fields (a dict by §5 name);
    `action` is the decoded action map itself, `request` a Request or None (§4.1)."""

    def __init__(self, seq, time, prev, signer, tag, fields, action=None, request=None,
                 factor=None):
        self.seq, self.time, self.prev, self.signer = seq, time, prev, signer
        self.tag, self.fields = tag, fields
        self.action, self.request = action, request
        self.factor = factor              # §4.2: the attested step (an int), or None

    def strings(self):
        """Every string field of the event, §7.2. The refused action of a request is part
        of the event and "its fields follow §4 and §7.1-7.2 like any action's" (§4.1)."""
        out = [v for v in self.fields.values() if isinstance(v, str)]
        if self.request is not None and self.request.refused is not None:
            out += [v for v in self.request.refused_fields.values() if isinstance(v, str)]
        return out


def check_action(action, perms, what="action"):
    """§4/§5: a map of exactly one entry, a known str tag, an array of the tag's fields
    with their types. Returns the tag; raises FormatError."""
    if not (isinstance(action, dict) and len(action) == 1):
        raise FormatError(f"{what} is not a map of 1 entry")
    (tag, fields), = action.items()
    if not isinstance(tag, str):
        raise FormatError(f"{what} tag is not a str")
    if tag not in ACTIONS:
        raise FormatError(f"{what}: unknown tag {tag!r}")
    if not isinstance(fields, list):
        raise FormatError(f"{what} fields are not an array")
    spec = ACTIONS[tag]
    if len(fields) != len(spec):
        raise FormatError(f"{what} {tag}: {len(fields)} fields, expected {len(spec)}")
    for (name, t), v in zip(spec, fields):
        if not type_ok(v, t, perms):
            raise FormatError(f"{what} {tag}: field {name} is not of type {t}")
    return tag


def decode_body(body, version=1):
    """§4: exactly one MessagePack value, canonical, an array of 5 with the stated types,
    or (version 2 only, §1, §4) of 6 whose 6th is the request of §4.1 (never nil)."""
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as e:  # ExtraData, invalid UTF-8, truncated, ...
        raise FormatError(f"not one MessagePack value: {type(e).__name__}")
    if not isinstance(value, list):
        raise FormatError("body is not an array")
    if len(value) in (6, 7) and version == 1:
        # §1: "In a version-1 file any of them is a `format` finding".
        raise FormatError("a request element (6th) in a version-1 file")
    if len(value) not in (5, 6, 7):
        raise FormatError(f"body is an array of {len(value)} elements, not 5 (or 6 with a request, 7 with an attestation)")
    perms = PERMISSIONS_V2 if version >= 2 else PERMISSIONS
    seq, time, prev, signer, action = value[:5]
    if not type_ok(seq, "uint"):
        raise FormatError("seq is not a uint")
    if not type_ok(time, "int"):
        raise FormatError("time is not an int")
    if not type_ok(prev, "bin32"):
        raise FormatError("prev is not bin 32")
    if not type_ok(signer, "bin32"):
        raise FormatError("signer is not bin 32")
    tag = check_action(action, perms)
    if tag in V2_TAGS and version == 1:
        raise FormatError(f"a {tag} action in a version-1 file")
    fields = action[tag]
    request = None
    factor = None
    if len(value) == 7:
        # §4.2: [kind (str, exactly "totp"), step (uint)]; never nil.
        att = value[6]
        if not (isinstance(att, list) and len(att) == 2):
            raise FormatError("the 7th element is not an attestation of 2 elements")
        if not type_ok(att[0], "factor"):
            raise FormatError("the attestation's kind is not totp")
        if not type_ok(att[1], "uint"):
            raise FormatError("the attestation's step is not a uint")
        factor = att[1]
    if len(value) >= 6:
        # §4.1: an array of exactly 5: key (bin 32), time (int), nonce (bin 16),
        # refused (nil or an action map as in §4), sig (bin 64). "the 6th is never nil".
        req = value[5]
        if req is None:
            raise FormatError("the 6th element is nil (an event without a request has 5)")
        if not (isinstance(req, list) and len(req) == 5):
            raise FormatError("request is not an array of 5 elements")
        r_key, r_time, r_nonce, r_refused, r_sig = req
        if not type_ok(r_key, "bin32"):
            raise FormatError("request key is not bin 32")
        if not type_ok(r_time, "int"):
            raise FormatError("request time is not an int")
        if not (isinstance(r_nonce, bytes) and len(r_nonce) == 16):
            raise FormatError("request nonce is not bin 16")
        if r_refused is not None:
            # Its fields follow §4 (types: a format error). Being a `genesis` or an
            # `action-denied`, or present on a non-denial, is check 7a(f)'s, not §4's.
            check_action(r_refused, perms, "request refused action")
        if not (isinstance(r_sig, bytes) and len(r_sig) == 64):
            raise FormatError("request sig is not bin 64")
        request = Request(r_key, r_time, r_nonce, r_refused, r_sig)
    # Canonical form: re-encoding the decoded value gives the same bytes (§4). The type
    # checks above ensure no float, ext, or non-str key survived to this point.
    try:
        again = msgpack.packb(value, use_bin_type=True)
    except Exception as e:
        raise FormatError(f"cannot re-encode: {e}")
    if again != body:
        raise FormatError("body is not in canonical MessagePack form")
    spec = ACTIONS[tag]
    return Event(seq, time, prev, signer, tag, dict((n, v) for (n, _), v in zip(spec, fields)),
                 action, request, factor)


def request_hash(ledger_id, req, requested_action):
    """§4.1: BLAKE3 derive-key ("keyledger 2026-11-24 request v1") over the canonical
    MessagePack of [ledger_id (bin 16), time (int), nonce (bin 16), requested action]. The
    action is canonical in the body, so re-encoding the decoded map gives its body bytes."""
    msg = msgpack.packb([ledger_id, req.time, req.nonce, requested_action], use_bin_type=True)
    return blake3.blake3(msg, derive_key_context=REQUEST_HASH_CONTEXT).digest()


# ---------------------------------------------------------------------------------------
# §9.1 Merkle tree (RFC 9162, SHA-256)
# ---------------------------------------------------------------------------------------

def merkle_root(leaves):
    """MTH over 32-byte event hashes; k = the largest power of two smaller than n."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()


# ---------------------------------------------------------------------------------------
# §6.2 / §7 State and policy
# ---------------------------------------------------------------------------------------

MINUTE = 60 * 1_000_000
HOUR = 60 * MINUTE
FUTURE_SLACK = 300_000_000                                 # §8.4(b): 5 minutes in µs
CHANNELS = ("stdout:text", "stdout:json", "stdout:env")


class Principal:
    def __init__(self, name, kind, created):
        self.name, self.kind, self.created = name, kind, created  # kind: account|user|federated
        self.deleted = False
        self.deleted_at = None        # frame index of the user-deleted event
        self.permissions = set()
        self.protected = False        # §7.3 R13: from protection-enabled to -disabled
        self.last_step = None         # §7.3 effects: the last attested step


class SigningKey:
    def __init__(self, principal, enroller, enrolled_at):
        self.principal, self.enroller = principal, enroller
        self.enrolled_at = enrolled_at  # frame index of the enrolling event
        self.revoked_at = None          # frame index of the signer-revoked event


class AccessKey:
    def __init__(self, user, temporary, fingerprints, expires, creator, created_at):
        self.user, self.temporary, self.fingerprints = user, temporary, fingerprints
        self.expires, self.creator = expires, creator
        self.created_at = created_at    # frame index of the creating event (§7.3 key-rotated)
        self.status = "active"          # active | disabled | deleted
        self.revealed = None
        self.last_use = None
        self.failed = 0
        self.successor = None           # key-rotated: the key ID that replaced this one
        self.predecessor = None         # key-rotated: the key ID this one replaced
        self.leak_reports = 0           # leak-reported: how many (no status change)


# §7.1 bounds per tag, in bytes of UTF-8 (the rows stated as a number of bytes).
TEXT_BOUNDS = {
    "key-created": [("scenario", 1024)],
    "secret-revealed": [("channel", 1024)],
    "auth-failed": [("reason", 1024), ("key_id", 64)],
    "auth-failures-summarized": [("key_id", 64)],
    "action-denied": [("attempted", 1024), ("reason", 1024), ("user", 64), ("key_id", 64)],
    "log-repaired": [("quarantine", 1024)],
    "leak-reported": [("source", 1024), ("reason", 1024)],
}


def refused_text_problems(tag, f):
    """§4.1 on a request's refused action: each string field is at most 1,024 bytes (its
    credential scan is §7.2's, over ev.strings()); "nothing else about it is judged"."""
    return [f"refused {tag}: {name} is longer than 1024 bytes (§4.1)"
            for (name, _), v in zip(ACTIONS[tag], [f[n] for (n, _) in ACTIONS[tag]])
            if isinstance(v, str) and utf8_len(v) > 1024]


class State:
    """§7: a pure fold over the events that change the state (§8: decoded, authentic, and
    passing the genesis checks (frame 0) or the signer and policy checks)."""

    def __init__(self):
        self.ledger_id = None
        self.account = None
        self.principals = {}          # name -> Principal (deleted ones kept: names never reused)
        self.signing = {}             # public key bytes -> SigningKey (revoked ones kept)
        self.keys = {}                # key ID -> AccessKey (deleted ones kept: IDs never reused)
        # Indexes (derived, for speed only): principal -> its access keys / signing keys.
        self.keys_of = {}             # user name -> [AccessKey]
        self.signing_of = {}          # principal name -> [public key bytes]
        # §8 check 7a(e): (key, nonce) of the requests of frames that changed the state.
        self.requests_seen = set()
        # §7.3 key-disabled (R14): (key ID, actor) when the last event that changed the
        # state is a leak-reported.
        self.last_leak = None

    # -- definitions of §7 -------------------------------------------------------------
    def live(self, name):
        p = self.principals.get(name)
        return p is not None and not p.deleted

    def admin(self, a):
        return a == self.account or (a in self.principals and "admin" in self.principals[a].permissions)

    def holds(self, a, perm):
        return a in self.principals and perm in self.principals[a].permissions

    def manages(self, a, u):
        if u == self.account:
            return a == self.account
        return self.admin(a) or self.holds(a, "manage-keys") or (a == u and self.holds(a, "manage-own-keys"))

    def holds_server(self, a):
        """The account holds every permission (§7.3)."""
        return a == self.account or self.holds(a, "server")

    def factor_subject(self, ev, actor):
        """§7.3 R13: whose second factor the event needs, or None."""
        if ev.tag == "protection-enabled":
            return ev.fields["principal"]
        # R14: a server's key-disabled right after its own leak report needs no factor.
        if (ev.tag == "key-disabled" and self.holds_server(actor)
                and self.last_leak == (ev.fields["key_id"], actor)):
            return None
        if ev.tag in PROTECTED and actor in self.principals and self.principals[actor].protected:
            return actor
        return None

    @staticmethod
    def key_live(k, t):
        return k.status != "deleted" and (k.expires is None or t < k.expires)

    # -- §6.2 who may sign ---------------------------------------------------------------
    def signer_problem(self, pk):
        """None if pk is enrolled, unrevoked and its principal live; else the reason."""
        sk = self.signing.get(pk)
        if sk is None:
            return "the signing key is not enrolled"
        if sk.revoked_at is not None:
            return f"the signing key was revoked (frame {sk.revoked_at})"
        if not self.live(sk.principal):
            return f"the signing key's principal {sk.principal!r} is deleted"
        return None

    def request_problems(self, ev):
        """§8 check 7a, against this state (the state before the event); the reasons, empty
        when the request passes. Only reached once check 7 passed for the frame's signer."""
        why = []
        req = ev.request
        # (a) the frame's signer belongs to a principal holding `server`.
        server = self.signing[ev.signer].principal
        if server != self.account and not self.holds(server, "server"):
            why.append(f"the frame's signer belongs to {server!r}, who does not hold server")
        # (b) the request's key is enrolled, unrevoked and its principal live (§6.2).
        problem = self.signer_problem(req.key)
        if problem is not None:
            why.append("the request's key: " + problem)
        # (f) `refused` is a map exactly when the action is `action-denied`, and is not a
        # `genesis` or `action-denied` action. The requested action (§4.1) is the event's
        # own action, except in an `action-denied` event, where it is `refused`.
        if ev.tag == "action-denied" and req.refused is None:
            why.append("an action-denied request without the refused action")
        if ev.tag == "action-denied" and req.refused_tag in ("genesis", "action-denied"):
            why.append(f"the refused action is a {req.refused_tag}")
        if ev.tag == "auth-failed" and req.refused is not None and not (
                req.refused_tag == "auth-succeeded"
                and req.refused_fields.get("key_id") == ev.fields.get("key_id")):
            why.append("an auth-failed request's refused action is not auth-succeeded for its key")
        if ev.tag not in ("action-denied", "auth-failed") and req.refused is not None:
            why.append(f"a refused action in a request of a {ev.tag} event")
        # (c) `sig` verifies over the request hash (§6.1, A = key, M = the request hash).
        # The requested action is `refused` where that is a map, else the event's own.
        requested = req.refused if req.refused is not None else (
            None if ev.tag == "action-denied" else ev.action)
        if requested is None:
            # SPEC GAP: an action-denied without `refused` has no requested action and so
            # no request hash; (f) has already failed, and (c) is counted failed too.
            why.append("no requested action to verify the request signature over")
        elif not verify_signature(req.key, req.sig, request_hash(self.ledger_id, req, requested)):
            why.append("the request signature does not verify over the request hash (§4.1, §6.1)")
        # (d) the request's time is within 5 minutes of the event's time, either way.
        if abs(req.time - ev.time) > FUTURE_SLACK:
            why.append(f"request time {req.time} is more than 5 minutes from the event's {ev.time}")
        # (e) no earlier frame that changed the state had a request with this key and nonce.
        if (req.key, req.nonce) in self.requests_seen:
            why.append("an earlier applied request has the same key and nonce (replay)")
        # (g) an attestation: on an event with a factor subject, its step within
        # [c - 2, c + 1] of the event's step c, and not before the subject's last one.
        if ev.factor is not None and problem is None:
            subject = self.factor_subject(ev, self.actor_of(ev))
            c = ev.time // TOTP_STEP_US
            if subject is None:
                why.append("an attestation on an event with no factor subject")
            elif subject == server:
                why.append("the frame's signer is the factor subject's own key")
            elif not (c - 2 <= ev.factor <= c + 1):
                why.append(f"attested step {ev.factor} is not within [{c - 2}, {c + 1}]")
            else:
                p = self.principals.get(subject)
                last = p.last_step if p is not None else None
                if last is not None and ev.factor < last:
                    why.append(f"attested step {ev.factor} is before the last attested {last}")
        return why

    def actor_of(self, ev):
        """§6.2: the principal the signer is enrolled to; with a request, the principal the
        request's key is enrolled to (the server that signed the frame is never the actor)."""
        pk = ev.request.key if ev.request is not None else ev.signer
        return self.signing[pk].principal

    def signers_active_after(self, m):
        """§9.3: the keys active (enrolled, not revoked, principal live) in the state after
        the first m frames, reconstructed from the frame indexes recorded by the fold."""
        out = []
        for pk, sk in self.signing.items():
            if sk.enrolled_at >= m or (sk.revoked_at is not None and sk.revoked_at < m):
                continue
            p = self.principals[sk.principal]
            if p.deleted_at is not None and p.deleted_at < m:
                continue
            out.append(pk)
        return out

    # -- §6.2, §8.6 genesis ----------------------------------------------------------------
    def apply_genesis(self, ev, index):
        f = ev.fields
        self.ledger_id = f["ledger_id"]
        self.account = f["account"]
        self.principals[self.account] = Principal(self.account, "account", ev.time)
        self.signing[f["public_key"]] = SigningKey(self.account, self.account, index)
        self.signing_of[self.account] = [f["public_key"]]

    # -- §7.1, §7.2, §7.3 ------------------------------------------------------------------
    def policy_problems(self, ev, actor, offset):
        """The reasons the event is not allowed by this state for `actor` (empty: allowed)."""
        why = []
        f, t, tag = ev.fields, ev.time, ev.tag

        # §7.2: no well-formed secret or security token in any string field, whatever the tag.
        for s in ev.strings():
            if contains_credential(s):
                why.append("a string field holds a well-formed secret or security token (§7.2)")
                break

        # §7.1 bounds (the rows not already covered by a name, key ID or existence rule).
        def bound(name, limit):
            v = f[name]
            if v is not None and utf8_len(v) > limit:
                why.append(f"{name} is longer than {limit} bytes (§7.1)")

        if tag == "key-created":
            bound("scenario", 1024)
        elif tag == "secret-revealed":
            bound("channel", 1024)
        elif tag == "auth-failed":
            bound("reason", 1024)
            bound("key_id", 64)
        elif tag == "action-denied":
            bound("attempted", 1024)
            bound("reason", 1024)
            bound("user", 64)
            bound("key_id", 64)
        elif tag == "log-repaired":
            bound("quarantine", 1024)
        elif tag == "leak-reported":
            bound("source", 1024)
            bound("reason", 1024)
        elif tag == "auth-failures-summarized":
            bound("key_id", 64)

        # §4.1: the refused action's "fields follow §4 and §7.1-7.2 like any action's"
        # (§7.2 is covered by ev.strings() above).
        if ev.tag == "action-denied" and ev.request is not None and ev.request.refused is not None:
            why += refused_text_problems(ev.request.refused_tag, ev.request.refused_fields)

        # §7.3 row by row.
        acct = self.account
        if tag == "signer-enrolled":
            pr, pk = f["principal"], f["public_key"]
            if not self.admin(actor):
                why.append("actor is not admin")
            if pr == acct and actor != acct:
                why.append("only the account enrolls the account's keys")
            if not self.live(pr):
                why.append(f"principal {pr!r} is not live")
            if not key_acceptable(pk):
                why.append("the key is not acceptable (§6.2)")
            if pk in self.signing:
                why.append("the key was enrolled before")
        elif tag == "signer-revoked":
            pr, pk = f["principal"], f["public_key"]
            if pr == acct:
                if actor != acct:
                    why.append("only the account revokes the account's keys")
            elif not (actor == pr or self.admin(actor)):
                why.append("actor is neither the principal nor admin")
            sk = self.signing.get(pk)
            if sk is None or sk.principal != pr:
                why.append(f"the key is not enrolled to {pr!r}")
            elif sk.revoked_at is not None:
                why.append("the key is already revoked")
            if pr == acct and not any(k != pk and self.signing[k].revoked_at is None
                                      for k in self.signing_of.get(acct, [])):
                why.append("the account would keep no other unrevoked key")
        elif tag == "user-created":
            name = f["name"]
            if not self.admin(actor):
                why.append("actor is not admin")
            if not is_name(name):
                why.append(f"{name!r} is not a name (§7.1)")
            if name in self.principals:
                why.append(f"a principal named {name!r} existed before")
        elif tag == "user-deleted":
            name = f["name"]
            if not self.admin(actor):
                why.append("actor is not admin")
            if not self.live(name):
                why.append(f"{name!r} is not live")
            if name == acct:
                why.append("the account cannot be deleted")
            if any(self.key_live(k, t) for k in self.keys_of.get(name, [])):
                why.append(f"{name!r} still has a live key")
        elif tag == "permission-granted":
            pr, perm = f["principal"], f["permission"]
            if not self.admin(actor):
                why.append("actor is not admin")
            if not self.live(pr):
                why.append(f"{pr!r} is not live")
            if pr == acct:
                why.append("permissions are not granted to the account")
            if self.holds(pr, perm):
                why.append(f"{pr!r} already holds {perm}")
        elif tag == "permission-revoked":
            pr, perm = f["principal"], f["permission"]
            if not self.admin(actor):
                why.append("actor is not admin")
            if not self.live(pr):
                why.append(f"{pr!r} is not live")
            if not self.holds(pr, perm):
                why.append(f"{pr!r} does not hold {perm}")
        elif tag == "key-created":
            kid, user = f["key_id"], f["user"]
            if not well_formed(kid, "permanent"):
                why.append("key_id is not a well-formed permanent key ID (§11)")
            if kid in self.keys:
                why.append("key_id used before")
            if strip_white_space(f["scenario"]) == "":
                why.append("scenario is empty")
            if f["confirmed_necessary"] is not True:
                why.append("confirmed_necessary is false")
            if not self.live(user):
                why.append(f"user {user!r} is not live")
            elif self.principals[user].kind == "federated":
                why.append(f"user {user!r} is federated")
            if user == acct and (f["root_key_allowed"] is not True or actor != acct):
                why.append("a root key needs root_key_allowed and the account as actor")
            if not self.manages(actor, user):
                why.append(f"actor does not manage {user!r}")
            if sum(1 for k in self.keys_of.get(user, [])
                   if not k.temporary and k.status != "deleted") >= 2:
                why.append(f"{user!r} already has 2 undeleted permanent keys")
        elif tag == "temporary-issued":
            kid, user = f["key_id"], f["user"]
            if not well_formed(kid, "temporary"):
                why.append("key_id is not a well-formed temporary key ID (§11)")
            if kid in self.keys:
                why.append("key_id used before")
            if not self.live(user):
                why.append(f"user {user!r} is not live")
            if user == acct:
                why.append("no temporary credentials for the account")
            if not (15 * MINUTE <= f["expires"] - t <= 12 * HOUR):
                why.append("expires - time is not within 15 min .. 12 h")
            if not self.manages(actor, user):
                why.append(f"actor does not manage {user!r}")
        elif tag == "secret-revealed":
            ch = f["channel"]
            # §5: exactly one of CHANNELS, or `csv:` followed by an absolute path (starting
            # with `/`, holding no NUL byte); nothing else is required of the path.
            if not (ch in CHANNELS or (ch.startswith("csv:/") and "\0" not in ch)):
                why.append(f"channel {ch!r} is not one of the forms of §5")
            k = self.keys.get(f["key_id"])
            if k is None:
                why.append("no such key")
            else:
                if not (actor == f["to"] == k.creator):
                    why.append("actor, to and the key's creator are not all the same")
                if k.revealed is not None:
                    why.append("the secret was revealed before")
                if k.status == "deleted":
                    why.append("the key is deleted")
        elif tag in ("key-disabled", "key-enabled", "key-deleted"):
            k = self.keys.get(f["key_id"])
            if k is None:
                why.append("no such key")
            else:
                # §7.3 (R14): a server disables the key its last applied event reported leaked.
                after_report = (tag == "key-disabled" and self.holds_server(actor)
                                and self.last_leak == (f["key_id"], actor))
                if not self.manages(actor, k.user) and not after_report:
                    why.append(f"actor does not manage {k.user!r}")
                if tag == "key-disabled" and k.status != "active":
                    why.append(f"the key is {k.status}, not active")
                if tag == "key-enabled":
                    if k.status != "disabled":
                        why.append(f"the key is {k.status}, not disabled")
                    if k.expires is not None and t >= k.expires:
                        why.append("the key is expired")
                if tag == "key-deleted" and k.status == "deleted":
                    why.append("the key is already deleted")
        elif tag == "auth-succeeded":
            k = self.keys.get(f["key_id"])
            if k is None:
                why.append("no such key")
            else:
                if k.status != "active":
                    why.append(f"the key is {k.status}")
                if k.expires is not None and t >= k.expires:
                    why.append("the key is expired")
        elif tag in ("auth-failed", "action-denied", "checkpoint-recorded"):
            pass  # any actor; bounds above (checkpoint-recorded's size and root: §8.9)
        elif tag == "key-rotated":
            # §7.1: old_key_id and new_key_id are "every other string": each must name an
            # existing key, which the existence rules below require. §7.3, clause by clause.
            old_id, new_id = f["old_key_id"], f["new_key_id"]
            old, new = self.keys.get(old_id), self.keys.get(new_id)
            if old is None:
                why.append("no such old key")
            else:
                if old.temporary:
                    why.append("the old key is not permanent")
                if old.status == "deleted":
                    why.append("the old key is deleted")
                if old.successor is not None:
                    why.append(f"the old key was rotated before (to {old.successor!r})")
                if not self.manages(actor, old.user):
                    why.append(f"actor does not manage {old.user!r}")
            if new is None:
                why.append("no such new key")
            else:
                if new.temporary:
                    why.append("the new key is not permanent")
                if new.status == "deleted":
                    why.append("the new key is deleted")
                if new.predecessor is not None:
                    why.append(f"the new key replaced another key before ({new.predecessor!r})")
                if old is not None:
                    if new.user != old.user:
                        why.append(f"the new key belongs to {new.user!r}, not {old.user!r}")
                    # SPEC GAP: "created by a later event" is read as a later position in
                    # the log (frame index of the creating event), not a later `time`.
                    if not new.created_at > old.created_at:
                        why.append("the new key was not created by a later event than the old key")
        elif tag == "log-repaired":
            if not self.admin(actor):
                why.append("actor is not admin")
            if f["offset"] != offset:
                why.append(f"offset {f['offset']} is not this frame's offset {offset}")
            if not (1 <= f["removed_bytes"] <= 65603):
                why.append("removed_bytes is not within 1..65603")
            q = f["quarantine"]
            if not (1 <= utf8_len(q) <= 1024) or "/" in q or "\0" in q:
                why.append("quarantine is not 1..1024 bytes without '/' and NUL")
        elif tag == "leak-reported":
            # §7.3: any status, deleted included; who may disable it may report it.
            for name in ("source", "reason"):
                if strip_white_space(f[name]) == "":
                    why.append(f"{name} is empty")
            k = self.keys.get(f["key_id"])
            if k is None:
                why.append("no such key")
            elif not self.manages(actor, k.user) and not self.holds_server(actor):
                # R14: a server records what a secret scanner it verified reported.
                why.append(f"actor does not manage {k.user!r} and does not hold server")
        elif tag == "auth-failures-summarized":
            # §7.3 (R11): only a server; at least one failure, first <= last <= time.
            if not self.holds_server(actor):
                why.append("actor does not hold server")
            if f["count"] < 1:
                why.append("count is 0")
            if not (f["first"] <= f["last"] <= t):
                why.append("not first <= last <= the event's time")
        elif tag == "protection-enabled":
            pr = f["principal"]
            if pr == acct and actor != acct:
                why.append("only the account turns on the account's protection")
            elif actor != pr and not self.admin(actor):
                why.append("actor is neither the principal nor admin")
            if not self.live(pr):
                why.append(f"{pr!r} is not live")
            elif self.principals[pr].protected:
                why.append(f"{pr!r} is already protected")
        elif tag == "protection-disabled":
            pr = f["principal"]
            if pr == acct and actor != acct:
                why.append("only the account turns off the account's protection")
            if not self.live(pr):
                why.append(f"{pr!r} is not live")
            elif not self.principals[pr].protected:
                why.append(f"{pr!r} is not protected")
            if actor != pr and not (self.admin(actor) and self.principals[actor].protected):
                why.append("actor is neither the principal nor a protected admin")
        elif tag == "genesis":
            why.append("genesis outside frame 0")  # not reached: §8.6 handles it
        # §7.3 R13: an event with a factor subject carries an attestation.
        if self.factor_subject(ev, actor) is not None and ev.factor is None:
            why.append("a protected action of a protected actor (or protection-enabled) without the server's second-factor attestation (R13)")
        return why

    def note_request(self, ev):
        """§8 check 7a(e): remember the (key, nonce) of a frame that changed the state."""
        if ev.request is not None:
            self.requests_seen.add((ev.request.key, ev.request.nonce))

    def add_key(self, key_id, k):
        self.keys[key_id] = k
        self.keys_of.setdefault(k.user, []).append(k)

    def apply(self, ev, actor, index):
        """§7.3 Effects, for an event already allowed."""
        f, tag = ev.fields, ev.tag
        self.last_leak = (f["key_id"], actor) if tag == "leak-reported" else None
        subject = self.factor_subject(ev, actor)
        if ev.factor is not None and subject is not None:
            self.principals[subject].last_step = ev.factor
        if tag == "protection-enabled":
            self.principals[f["principal"]].protected = True
        elif tag == "protection-disabled":
            self.principals[f["principal"]].protected = False
        if tag == "signer-enrolled":
            self.signing[f["public_key"]] = SigningKey(f["principal"], actor, index)
            self.signing_of.setdefault(f["principal"], []).append(f["public_key"])
        elif tag == "signer-revoked":
            self.signing[f["public_key"]].revoked_at = index
        elif tag == "user-created":
            kind = "federated" if f["federated"] else "user"
            self.principals[f["name"]] = Principal(f["name"], kind, ev.time)
        elif tag == "user-deleted":
            p = self.principals[f["name"]]
            p.deleted, p.deleted_at = True, index
        elif tag == "permission-granted":
            self.principals[f["principal"]].permissions.add(f["permission"])
        elif tag == "permission-revoked":
            self.principals[f["principal"]].permissions.discard(f["permission"])
        elif tag == "key-created":
            self.add_key(f["key_id"], AccessKey(f["user"], False, (f["fingerprint"],), None, actor,
                                                index))
        elif tag == "temporary-issued":
            self.add_key(f["key_id"], AccessKey(f["user"], True,
                                                (f["fingerprint"], f["token_fingerprint"]),
                                                f["expires"], actor, index))
        elif tag == "secret-revealed":
            self.keys[f["key_id"]].revealed = (ev.time, f["to"], f["channel"])
        elif tag == "key-disabled":
            self.keys[f["key_id"]].status = "disabled"
        elif tag == "key-enabled":
            self.keys[f["key_id"]].status = "active"
        elif tag == "key-deleted":
            self.keys[f["key_id"]].status = "deleted"
        elif tag == "key-rotated":
            # The old key's successor and the new key's predecessor; no status changes.
            self.keys[f["old_key_id"]].successor = f["new_key_id"]
            self.keys[f["new_key_id"]].predecessor = f["old_key_id"]
        elif tag == "auth-succeeded":
            self.keys[f["key_id"]].last_use = ev.time
        elif tag == "auth-failed":
            if f["key_id"] in self.keys:
                self.keys[f["key_id"]].failed += 1
        elif tag == "leak-reported":
            self.keys[f["key_id"]].leak_reports += 1
        elif tag == "auth-failures-summarized":
            if f["key_id"] in self.keys:
                self.keys[f["key_id"]].failed += f["count"]
        # action-denied, checkpoint-recorded, log-repaired: change nothing else.


# ---------------------------------------------------------------------------------------
# §8 Verification
# ---------------------------------------------------------------------------------------

class Finding:
    def __init__(self, problem, seq, index, offset, message):
        self.problem, self.seq, self.index, self.offset, self.message = (
            problem, seq, index, offset, message)

    def __str__(self):
        seq = "-" if self.seq is None else self.seq
        where = "" if self.index is None else f"frame {self.index}: "
        return f"{self.problem} seq={seq} offset={self.offset}: {where}{self.message}"


class Result:
    def __init__(self):
        self.findings = []
        self.hashes = []          # event hash of every complete frame (§9.1 leaves)
        self.event_hashes = []    # the hashes of the frames whose body decodes (§9 head)
        self.times = []           # (frame index, seq, offset, time) of each frame that decodes
        self.state = State()
        self.frames = 0
        self.end = 0              # offset just after the last complete frame
        self.version = None       # the header's format version (§1)

    def add(self, *args):
        self.findings.append(Finding(*args))


def now_micros():
    return int(_time.time() * 1_000_000)


def verify_ledger(data, now=None):
    """§1, §2, §8: every frame, every check; returns a Result (findings in file order)."""
    r = Result()
    now = now_micros() if now is None else now

    # §1 header: a `format` finding at offset 0, with neither seq nor frame index (§8).
    if len(data) < 16:
        r.add("format", None, None, 0, f"file is {len(data)} bytes, shorter than the 16-byte header")
        return r
    if data[:8] != b"KEYLEDGR":
        r.add("format", None, None, 0, "wrong magic")
        return r
    version = struct.unpack(">H", data[8:10])[0]
    if version not in (1, 2):
        r.add("format", None, None, 0, f"format version {version}, not 1 or 2")
        return r
    r.version = version
    if any(data[10:16]):
        r.add("format", None, None, 0, "reserved header bytes are not zero")
        return r

    st = r.state
    off, index = 16, 0
    expected_seq = 0              # §8.2
    prev_hash = bytes(32)         # §8.3
    time_bar = None               # §8.4(a): greatest time of earlier state-changing, present frames
    genesis_ok = False

    while off < len(data):
        # §2 framing. The length is judged first: an out-of-range length is `format` even
        # where the file also ends before the frame would.
        left = len(data) - off
        if left < 4:
            r.add("torn", None, index, off, f"torn frame: {left} of 4 length bytes")
            break
        n = struct.unpack(">I", data[off:off + 4])[0]
        if not 1 <= n <= 65536:
            r.add("format", None, index, off, f"body_len {n} outside 1..65536: the rest cannot be framed")
            break
        if left < 4 + n + 64:
            r.add("torn", None, index, off, f"torn frame: {left} of {4 + n + 64} bytes")
            break
        body = data[off + 4:off + 4 + n]
        sig = data[off + 4 + n:off + 4 + n + 64]
        h = event_hash(body)
        r.hashes.append(h)

        # §8.1 format: an undecodable frame is one finding; the checks below are skipped.
        try:
            ev = decode_body(body, version)
        except FormatError as e:
            # §8: a finding about a frame that does not decode carries no seq (a body that
            # is MessagePack but fails §4/§5 does not decode in the sense of §8.1).
            r.add("format", None, index, off, str(e))
            expected_seq += 1     # §8.2: counts as having the expected seq
            prev_hash = h         # §8.1: the next frame's prev is compared with its hash
            off += 4 + n + 64
            index += 1
            continue

        r.event_hashes.append(h)
        seq = ev.seq
        r.times.append((index, seq, off, ev.time))
        # §8.2 sequence
        if seq != expected_seq:
            r.add("sequence", seq, index, off, f"seq {seq}, expected {expected_seq}")
        # §8.3 chain
        if ev.prev != prev_hash:
            r.add("chain", seq, index, off, "prev is not the hash of the previous frame's body")
        # §8.4 time
        future = ev.time > now + FUTURE_SLACK
        backwards = time_bar is not None and ev.time < time_bar
        if future or backwards:
            why = []
            if backwards:
                why.append(f"time {ev.time} is before {time_bar}, the latest time of an earlier "
                           "frame that changed the state")
            if future:
                why.append(f"time {ev.time} is more than 5 minutes after the verifier's clock")
            r.add("time", seq, index, off, "; ".join(why))
        # §8.5 signature (§6.1)
        sig_ok = verify_signature(ev.signer, sig, h)
        if not sig_ok:
            r.add("signature", seq, index, off, "the signature does not verify (§6.1)")
        # §8.6 genesis, then §8.7 signer, §8.7a request and §8.8 policy. A frame changes
        # the state only if it decodes, its signature verifies, and it passes the genesis
        # checks (frame 0) or the signer, request and policy checks (other frames);
        # sequence, chain and time findings do not stop it.
        changed = False
        if index == 0:
            # Frame 0 is judged by checks 1-6 and 9 alone: the genesis checks take the
            # place of 7 and 8. A bad signature is check 5's finding, not a genesis one.
            # §8.6: "a `genesis` action, with no request (§4.1)".
            why = []
            if ev.tag != "genesis":
                why.append(f"frame 0 is {ev.tag}, not genesis")
            else:
                if ev.request is not None:
                    why.append("the genesis carries a request")
                if ev.signer != ev.fields["public_key"]:
                    why.append("the signer field is not the public_key the genesis names")
                if not key_acceptable(ev.fields["public_key"]):
                    why.append("the genesis key is not acceptable (§6.2)")
                if not is_name(ev.fields["account"]):
                    why.append("the account is not a name (§7.1)")
            if why:
                r.add("genesis", seq, index, off, "; ".join(why))
            elif sig_ok:
                st.apply_genesis(ev, index)
                genesis_ok = changed = True
        elif ev.tag == "genesis":
            # A genesis action in any other frame: a finding, judged no further (no check
            # 7 or 8), never applied.
            r.add("genesis", seq, index, off, "a genesis action outside frame 0 (never applied)")
        elif sig_ok:
            # Check 7 only for an authentic frame; check 7a only if check 7 passes and the
            # event has a request; check 8 only if checks 7 and 7a pass.
            problem = st.signer_problem(ev.signer)
            req_why = []
            if problem is not None:
                if not genesis_ok:
                    problem += " (frame 0 is not a valid genesis)"
                r.add("signer", seq, index, off, problem)
            elif ev.request is not None and (req_why := st.request_problems(ev)):
                r.add("request", seq, index, off, "; ".join(req_why))
            else:
                # §6.2 / §8.8: the actor is the request's key's principal when there is a
                # request, else the signer's.
                actor = st.actor_of(ev)
                why = st.policy_problems(ev, actor, off)
                if why:
                    r.add("policy", seq, index, off, f"{ev.tag} by {actor!r}: " + "; ".join(why))
                else:
                    st.apply(ev, actor, index)
                    changed = True
        if changed:
            st.note_request(ev)       # §8 check 7a(e)

        # §8.9 anchor: a recorded checkpoint must match the frames before it.
        if ev.tag == "checkpoint-recorded":
            size, root = ev.fields["size"], ev.fields["root"]
            if size != index:
                r.add("anchor", seq, index, off, f"recorded checkpoint size {size}, but this is frame {index}")
            elif root != merkle_root(r.hashes[:index]):
                r.add("anchor", seq, index, off, "recorded checkpoint root is not the Merkle root of the frames before it")

        # §8.4(a): the time bar is raised only by frames that changed the state and do not
        # themselves fail §8.4(b) (are not from the future).
        if changed and not future:
            time_bar = ev.time if time_bar is None else max(time_bar, ev.time)
        expected_seq = seq + 1
        prev_hash = h
        off += 4 + n + 64
        index += 1

    r.frames = index
    r.end = off
    # §1, §8: a file of a header alone (nothing at all after it) is a `genesis` finding at
    # offset 16, with neither seq nor frame index; a torn or unframable frame 0 has only
    # its `torn` / `format` finding instead.
    if index == 0 and not r.findings:
        r.add("genesis", None, None, 16, "no frames: the ledger has no genesis event")
    return r


# ---------------------------------------------------------------------------------------
# §9 Trust anchors and checkpoints
# ---------------------------------------------------------------------------------------

class NoteError(Exception):
    pass


B64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def b64_canonical(s):
    """Standard base64 with padding (RFC 4648 §4), canonical (no stray bits in the last
    character: re-encoding gives the same text); None if not of that form."""
    if B64_RE.fullmatch(s) is None:
        return None
    blob = base64.b64decode(s, validate=True)
    return blob if base64.b64encode(blob).decode("ascii") == s else None


def parse_note(raw):
    """§9.2: strict parsing of a checkpoint note; returns (text bytes, origin, size, root,
    [(key name, decoded signature bytes)]) or raises NoteError."""
    try:
        note = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("not UTF-8")
    for c in note:
        if c < " " and c != "\n":
            raise NoteError(f"control character U+{ord(c):04X}")
    # The text is everything up to and including the newline before the last blank line.
    i = note.rfind("\n\n")
    if i < 0:
        raise NoteError("no blank line")
    text, sigpart = note[:i + 1], note[i + 2:]
    lines = text[:-1].split("\n")
    if len(lines) < 3 or any(line == "" for line in lines):
        raise NoteError("the text needs at least three non-empty lines")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    if re.fullmatch(r"0|[1-9][0-9]*", size_s, re.ASCII) is None:
        raise NoteError(f"tree size {size_s!r} is not ASCII decimal without sign or leading zero")
    root = b64_canonical(root_s)
    if root is None or len(root) != 32:
        raise NoteError("root is not canonical standard base64 of 32 bytes")
    # Lines 4.. are extension lines: ignored.
    if sigpart == "" or not sigpart.endswith("\n"):
        raise NoteError("signature lines missing or not ending in a newline")
    sig_lines = sigpart[:-1].split("\n")
    if len(sig_lines) > 100:
        raise NoteError("more than 100 signature lines")
    sigs = []
    for line in sig_lines:
        if not line.startswith("\u2014 "):
            raise NoteError("a signature line does not start with an em dash and a space")
        rest = line[2:]
        sp = rest.find(" ")
        if sp <= 0:
            raise NoteError("a signature line has no key name")
        name, b64 = rest[:sp], rest[sp + 1:]
        if "+" in name or any(c in WHITE_SPACE for c in name):
            raise NoteError("a key name holds '+' or white space")
        blob = b64_canonical(b64)
        if blob is None or len(blob) < 5:
            raise NoteError("a signature is not canonical standard base64 of at least 5 bytes")
        sigs.append((name, blob))
    return text.encode("utf-8"), origin, int(size_s), root, sigs


def note_key_id(name, pk):
    """§9.2: SHA-256(key name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n\x01" + pk).digest()[:4]


def check_checkpoint(r, raw):
    """§9.3: None if the ledger is consistent with the checkpoint, else the reason."""
    try:
        text, origin, n, root, sigs = parse_note(raw)
    except NoteError as e:
        return f"checkpoint note is malformed: {e}"
    st = r.state
    if st.ledger_id is None or origin != "keyledger/" + st.ledger_id.hex():
        return f"checkpoint origin {origin!r} is not this ledger's"
    # Keys that may sign: active in the state after the first max(n, 1) frames.
    may_sign = {}
    for pk in st.signers_active_after(max(n, 1)) if r.frames >= max(n, 1) else []:
        may_sign.setdefault(note_key_id(origin, pk), []).append(pk)
    known = 0
    for name, blob in sigs:
        if name != origin or blob[:4] not in may_sign:
            continue      # other lines (witness cosignatures, unknown keys) are ignored
        known += 1
        sig = blob[4:]
        if not any(len(sig) == 64 and verify_signature(pk, sig, text) for pk in may_sign[blob[:4]]):
            return "a known checkpoint signature does not verify"
    if known == 0:
        return "no checkpoint signature by a key that may sign it (§9.3)"
    if r.frames < n:
        return f"checkpoint covers {n} frames, the ledger has {r.frames}: its tail was cut"
    if merkle_root(r.hashes[:n]) != root:
        return f"the Merkle root of the first {n} frames differs from the checkpoint's: rewritten or forked"
    return None


def check_anchors(r, expect_genesis=None, expect_head=None, checkpoint=None):
    """§9: genesis hash (frame 0 whatever its verdict), head hash, checkpoint."""
    if expect_genesis is not None:
        if not r.hashes or r.hashes[0].hex() != expect_genesis.lower():
            got = r.hashes[0].hex() if r.hashes else "no frame 0"
            r.add("anchor", None, None, 16, f"genesis hash is {got}, expected {expect_genesis}")
    if expect_head is not None:
        # §9: a frame whose body decodes (§8.1) and hashes to it, whatever its other
        # findings; an undecodable frame's hash does not satisfy the anchor.
        if expect_head.lower() not in (h.hex() for h in r.event_hashes):
            r.add("anchor", None, None, r.end, f"no event has hash {expect_head}: tail cut or rewritten")
    if checkpoint is not None:
        problem = check_checkpoint(r, checkpoint)
        if problem is not None:
            r.add("anchor", None, None, r.end, problem)


# ---------------------------------------------------------------------------------------
# §9.4 Witness cosignatures, §9.5 fork proofs, §9.6 tiles
# ---------------------------------------------------------------------------------------

def parse_vkey(text, want_type):
    """A signed-note verifier key <name>+<hex key ID>+<base64(type || 32-byte key)> of the
    given type (0x01 a log's note key, 0x04 a witness's cosignature key), its key ID
    SHA-256(name || 0x0A || type || key)[:4]; (name, key) or raise Usage."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise Usage(f"{text!r} is not a verifier key NAME+KEYID+BASE64")
    name, kid, b64 = parts
    if name == "" or "+" in name or any(c in WHITE_SPACE for c in name):
        raise Usage(f"{text!r}: the key name is empty or holds white space")
    raw = b64_canonical(b64)
    if raw is None or len(raw) != 33 or raw[0] != want_type:
        raise Usage(f"{text!r}: not a type 0x{want_type:02x} key of 32 bytes")
    pk = raw[1:]
    if hashlib.sha256(name.encode("utf-8") + b"\n" + raw).digest()[:4].hex() != kid:
        raise Usage(f"{text!r}: the key ID does not match the name and key")
    if not key_acceptable(pk):
        raise Usage(f"{text!r}: the key is not acceptable (§6.2)")
    return name, pk


def cosigners(raw, witnesses):
    """§9.4: the trusted witnesses' valid cosignatures on the note, {name: earliest time},
    and the note's tree size; raises NoteError if the note is malformed or a line whose
    name and key ID are a trusted witness's does not verify."""
    text, _origin, n, _root, sigs = parse_note(raw)
    out = {}
    for name, blob in sigs:
        keys = [pk for (wn, pk) in witnesses
                if wn == name and hashlib.sha256(name.encode("utf-8") + b"\n\x04" + pk).digest()[:4] == blob[:4]]
        if not keys:
            continue      # not a trusted witness's line: ignored
        ok = False
        if len(blob) == 4 + 8 + 64:
            t = int.from_bytes(blob[4:12], "big")
            if 0 < t <= 2 ** 63 - 1:
                msg = b"cosignature/v1\ntime " + str(t).encode("ascii") + b"\n" + text
                ok = any(verify_signature(pk, blob[12:], msg) for pk in keys)
        if not ok:
            raise NoteError(f"the line of trusted witness {name} does not verify")
        out[name] = min(out.get(name, t), t)
    return out, n


def check_witnesses(r, raw, witnesses, quorum):
    """§9.4 for `verify --checkpoint F --witness-key V… --quorum K`: an `anchor` finding if
    fewer than K distinct trusted witnesses (by name) cosigned or a trusted line fails; a
    `time` finding for each frame among the first n dated more than 5 minutes after the
    K-th earliest cosigner's time."""
    try:
        cosigned, n = cosigners(raw, witnesses)
    except NoteError as e:
        r.add("anchor", None, None, r.end, f"the checkpoint's cosignatures: {e}")
        return
    if len(cosigned) < quorum:
        r.add("anchor", None, None, r.end,
              f"{len(cosigned)} trusted witness(es) cosigned, fewer than the quorum of {quorum}")
    if len(cosigned) >= quorum:
        bound = sorted(cosigned.values())[quorum - 1] * 1_000_000 + FUTURE_SLACK
        for index, seq, off, t in r.times:
            if index < n and t > bound:
                r.add("time", seq, index, off, f"dated {t}, after a cosignature covering it (bound {bound})")
    # Findings in frame order, whole-file findings last (as keyledger lists them).
    r.findings.sort(key=lambda f: float("inf") if f.index is None else f.index)


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_consistency(m, n, old_root, new_root, proof):
    """RFC 9162 §2.1.4.2 for 0 < m < n; for m = n the proof is empty and the roots equal."""
    if m == n:
        return not proof and old_root == new_root
    if not 0 < m < n or not proof:
        return False
    path = list(proof)
    if m & (m - 1) == 0:
        path.insert(0, old_root)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old_root and sr == new_root and sn == 0


def note_signed_by(raw, name, keys):
    """§9.3's signature rule with the log's keys: every line under `name` with one of their
    key IDs verifies with a key of that ID, and there is one; (origin, size, root) or None."""
    try:
        text, origin, n, root, sigs = parse_note(raw)
    except NoteError:
        return None
    known = [(blob, [pk for pk in keys if note_key_id(name, pk) == blob[:4]])
             for (nm, blob) in sigs if nm == name]
    known = [(blob, pks) for blob, pks in known if pks]
    if not known or origin != name:
        return None
    if not all(len(b) == 68 and any(verify_signature(pk, b[4:], text) for pk in pks)
               for b, pks in known):
        return None
    return origin, n, root


def check_fork(data, log_vkeys):
    """§9.5: None if the proof proves a fork by the log's keys, else why not; raises Usage
    if it is not a fork proof at all (or the keys are not one log's)."""
    parsed = [parse_vkey(v, 0x01) for v in log_vkeys]
    if not parsed or len({name for name, _ in parsed}) != 1:
        raise Usage("the log's keys must share one key name")
    name, keys = parsed[0][0], [pk for _, pk in parsed]
    head = b"keyledger fork proof v1\n"
    if not data.startswith(head) or b"\n\n" not in data:
        raise Usage("not a fork proof")
    top, rest = data[len(head):].split(b"\n\n", 1)
    lines = top.decode("ascii", "replace").split("\n")
    hashes = []
    for i, line in enumerate(lines):
        word, _, v = line.partition(" ")
        h = b64_canonical(v)
        if word != ("root" if i == 0 else "proof") or h is None or len(h) != 32:
            raise Usage("not a fork proof: a root line, then proof lines of 32-byte hashes")
        hashes.append(h)
    if len(hashes) > 64:
        raise Usage("not a fork proof: more than 63 proof lines")
    notes = []
    for _ in range(2):
        m = re.match(rb"note (0|[1-9][0-9]*)\n", rest)
        if m is None:
            raise Usage("not a fork proof: a `note N` line expected")
        k = int(m.group(1))
        body = rest[m.end():m.end() + k]
        if len(body) != k:
            raise Usage("not a fork proof: a note is cut short")
        notes.append(body)
        rest = rest[m.end() + k:]
    if rest:
        raise Usage("not a fork proof: bytes after the second note")
    a, b = (note_signed_by(x, name, keys) for x in notes)
    if a is None or b is None:
        return "a checkpoint is not a note of the log's key"
    (_, m, a_root), (_, n, b_root) = a, b
    if m > n:
        return "checkpoint A is larger than B"
    if m == 0:
        return "A is the empty tree, consistent with every tree"
    if not verify_consistency(m, n, hashes[0], b_root, hashes[1:]):
        return "the consistency proof fails"
    if hashes[0] == a_root:
        return "consistent: no fork"
    return None


def tile_index(n):
    """§9.6: 3-digit groups, all but the last prefixed with x."""
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def expected_tiles(hashes):
    """§9.6: {path: bytes} of every hash tile and entry bundle of a tree of these leaves."""
    out = {}
    size, level = len(hashes), 0
    while size // 256 ** level:
        count = size // 256 ** level          # complete subtrees of 256^level leaves
        span = 256 ** level
        for t in range((count + 255) // 256):
            w = min(256, count - 256 * t)
            name = tile_index(t) + ("" if w == 256 else f".p/{w}")
            subtrees = [hashes[(256 * t + i) * span:(256 * t + i + 1) * span] for i in range(w)]
            out[f"tile/{level}/{name}"] = b"".join(merkle_root(s) for s in subtrees)
            if level == 0:
                out[f"tile/entries/{name}"] = b"".join(b"\x00\x20" + s[0] for s in subtrees)
        level += 1
    return out


def check_tiles(ledger_path, tiles_dir):
    """The tiles directory holds exactly the tiles of the ledger and a checkpoint of it."""
    with open(ledger_path, "rb") as fh:
        r = verify_ledger(fh.read())
    want = expected_tiles(r.hashes)
    got = {}
    for root, _dirs, files in os.walk(tiles_dir):
        for f in files:
            p = os.path.join(root, f)
            rel = os.path.relpath(p, tiles_dir)
            if rel != "checkpoint":
                with open(p, "rb") as fh:
                    got[rel] = fh.read()
    if set(got) != set(want):
        return f"tile files differ: extra {sorted(set(got) - set(want))}, missing {sorted(set(want) - set(got))}"
    bad = [p for p in want if got[p] != want[p]]
    if bad:
        return f"tiles differ from the ledger's: {bad}"
    with open(os.path.join(tiles_dir, "checkpoint"), "rb") as fh:
        problem = check_checkpoint(r, fh.read())
    return problem


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------

class Usage(Exception):
    pass


def parse_args(args, base_dir=None):
    """LEDGER [--expect-genesis HEX] [--expect-head HEX] [--checkpoint FILE
    [--witness-key VKEY]... [--quorum K]]"""
    opts = {"ledger": None, "expect_genesis": None, "expect_head": None, "checkpoint": None,
            "witnesses": [], "quorum": None}
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--witness-key", "--quorum"):
            if i + 1 >= len(args):
                raise Usage(f"{a} needs a value")
            v = args[i + 1]
            if a == "--quorum":
                if re.fullmatch(r"[1-9][0-9]*", v) is None:
                    raise Usage("--quorum takes a positive number")
                opts["quorum"] = int(v)
            else:
                w = parse_vkey(v, 0x04)
                for name, pk in opts["witnesses"]:
                    if pk == w[1] and name != w[0]:
                        raise Usage(f"{v}: one key under two names counts one witness twice")
                if w not in opts["witnesses"]:
                    opts["witnesses"].append(w)
            i += 2
        elif a in ("--expect-genesis", "--expect-head", "--checkpoint"):
            if i + 1 >= len(args):
                raise Usage(f"{a} needs a value")
            v = args[i + 1]
            if a != "--checkpoint" and re.fullmatch(r"[0-9a-fA-F]{64}", v) is None:
                raise Usage(f"{a} takes 64 hex digits")
            opts[a[2:].replace("-", "_")] = v
            i += 2
        elif a.startswith("-"):
            raise Usage(f"unknown option {a}")
        elif opts["ledger"] is None:
            opts["ledger"] = a
            i += 1
        else:
            raise Usage("more than one ledger")
    for k in ("ledger", "checkpoint"):
        if opts[k] is not None and base_dir is not None and not os.path.isabs(opts[k]):
            opts[k] = os.path.join(base_dir, opts[k])
    names = {name for name, _ in opts["witnesses"]}
    if opts["witnesses"] and opts["checkpoint"] is None:
        raise Usage("--witness-key needs --checkpoint")
    if opts["quorum"] is not None and not opts["quorum"] <= len(names):
        raise Usage("--quorum is more than the witnesses given")
    if opts["witnesses"] and opts["quorum"] is None:
        opts["quorum"] = len(names)
    return opts


def run(opts):
    with open(opts["ledger"], "rb") as fh:
        data = fh.read()
    cp = None
    if opts["checkpoint"] is not None:
        with open(opts["checkpoint"], "rb") as fh:
            cp = fh.read()
    r = verify_ledger(data)
    check_anchors(r, opts["expect_genesis"], opts["expect_head"], cp)
    if opts["witnesses"]:
        check_witnesses(r, cp, opts["witnesses"], opts["quorum"])
    return r


def cofactorless_holds(a_bytes, sig, msg):
    """Informational only (not a rule of the spec): does [S]B = R + [k]A hold without the
    cofactor? None when S >= L or A or R does not decode (relaxed)."""
    r_bytes, s = sig[:32], int.from_bytes(sig[32:], "little")
    a_pt, r_pt = decode_point_relaxed(a_bytes), decode_point_relaxed(r_bytes)
    if s >= L or a_pt is None or r_pt is None:
        return None
    k = int.from_bytes(hashlib.sha512(r_bytes + a_bytes + msg).digest(), "little") % L
    q = point_add(point_mul(s, BASE), point_neg(point_add(r_pt, point_mul(k, a_pt))))
    return is_identity(q)


def check_vectors(path):
    """fixtures/ed25519-vectors.json: each vector (fields public_key, signature, message,
    all hex) against the §6.1 signature rule (the file's `zip215_valid`) and the §6.2 key
    rule (`key_acceptable`). `cofactorless_equation_holds` is informational in the file;
    it is compared too, as a check of this script's arithmetic, but is not a verdict."""
    with open(path) as fh:
        doc = json.load(fh)
    agree = disagree = 0
    for i, v in enumerate(doc["vectors"]):
        pk, sig, msg = (bytes.fromhex(v[k]) for k in ("public_key", "signature", "message"))
        label = f"{v.get('case', i)} ({v.get('description', '')})"
        notes, ok = [], True
        got = verify_signature(pk, sig, msg)
        ok &= got == v["zip215_valid"]
        notes.append(f"§6.1 valid={got} (file {v['zip215_valid']})")
        got = key_acceptable(pk)
        ok &= got == v["key_acceptable"]
        notes.append(f"§6.2 acceptable={got} (file {v['key_acceptable']})")
        if "cofactorless_equation_holds" in v:
            got = cofactorless_holds(pk, sig, msg)
            ok &= got == v["cofactorless_equation_holds"]
            notes.append(f"cofactorless={got} (file {v['cofactorless_equation_holds']})")
        print(f"{'ok  ' if ok else 'FAIL'} vector {label}: {', '.join(notes)}")
        agree += ok
        disagree += not ok
    print(f"{agree} of {agree + disagree} ed25519 vectors agree, {disagree} disagree")
    return disagree == 0


def run_fixtures(d):
    with open(os.path.join(d, "verdicts.json")) as fh:
        verdicts = json.load(fh)
    bad = 0
    for v in verdicts:
        opts = parse_args([v["file"]] + list(v["args"]), base_dir=d)
        r = run(opts)
        got = {f.problem for f in r.findings}
        first = next((f.seq for f in r.findings if f.seq is not None), None)
        exit_code = 1 if r.findings else 0
        ok = exit_code == v["exit"] and got == set(v["problems"]) and first == v["first_seq"]
        detail = "" if ok else (f"  (expected exit {v['exit']} {sorted(v['problems'])} first {v['first_seq']})")
        print(f"{'ok  ' if ok else 'FAIL'} {v['file']} {' '.join(v['args'])}: exit {exit_code} "
              f"{sorted(got)} first {first}{detail}")
        if not ok:
            for f in r.findings:
                print(f"       {f}")
        bad += not ok
    n = len(verdicts)
    print(f"{n - bad} of {n} verdicts agree, {bad} disagree")
    bad += run_forks_and_tiles(d)
    vec_ok = True
    vpath = os.path.join(d, "ed25519-vectors.json")
    if os.path.exists(vpath):
        vec_ok = check_vectors(vpath)
    return 0 if bad == 0 and vec_ok else 1


def run_forks_and_tiles(d):
    """fork-verdicts.json (§9.5: exit 0 proven, 1 not, 2 not a fork proof) and
    tiles-verdicts.json (§9.6); the number that disagree."""
    bad = 0
    path = os.path.join(d, "fork-verdicts.json")
    verdicts = json.load(open(path)) if os.path.exists(path) else []
    for v in verdicts:
        with open(os.path.join(d, v["proof"]), "rb") as fh:
            data = fh.read()
        try:
            why = check_fork(data, v["vkeys"])
            got = 0 if why is None else 1
        except Usage as e:
            why, got = str(e), 2
        ok = got == v["exit"]
        print(f"{'ok  ' if ok else 'FAIL'} {v['proof']}: exit {got} ({why or 'fork proven'}), expected {v['exit']}")
        bad += not ok
    path = os.path.join(d, "tiles-verdicts.json")
    verdicts = json.load(open(path)) if os.path.exists(path) else []
    for v in verdicts:
        why = check_tiles(os.path.join(d, v["ledger"]), os.path.join(d, v["tiles"]))
        print(f"{'ok  ' if why is None else 'FAIL'} {v['tiles']}: {why or 'the tiles and checkpoint of ' + v['ledger']}")
        bad += why is not None
    return bad


def main(argv):
    try:
        if argv[:1] == ["--fixtures"]:
            if len(argv) != 2:
                raise Usage("--fixtures DIR")
            return run_fixtures(argv[1])
        opts = parse_args(argv)
        if opts["ledger"] is None:
            raise Usage("no ledger given")
    except Usage as e:
        print(f"usage: independent_verify.py LEDGER [--expect-genesis HEX] [--expect-head HEX] "
              f"[--checkpoint FILE] | --fixtures DIR\n{e}", file=sys.stderr)
        return 2
    try:
        r = run(opts)
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for f in r.findings:
        print(f)
    print("OK" if not r.findings else "FAILED")
    return 1 if r.findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
