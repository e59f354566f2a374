"""keyledger against an independent implementation of the C2SP transparency-log specs:
aics-tlog (signed-note, tlog-checkpoint, tlog-cosignature, a tlog-tiles client, RFC 9162
trees) and aics-witness (a tlog-witness and its client), both from PyPI. Nothing here comes
from keyledger's code: leaves are read from the ledger file with the framing and event hash
of ledger-format.md (scripts/independent_verify.py), everything else is aics's.

    interop_aics.py tiles SOURCE LEDGER [BUNDLE_DIR...]
        SOURCE: a directory `keyledger tiles --out` wrote, or the URL of `serve --tiles`.
        From the tiles alone: the root equals the checkpoint's, every tile authenticates,
        inclusion and consistency proofs equal those of a tree built from the ledger's
        leaves (and, given bundles, the proofs keyledger put in their manifests) and verify.
    interop_aics.py feed WITNESS_URL WITNESS_VKEY NOTE LEDGER OUT STATE
        Submits NOTE to a tlog-witness with aics's client (consistency proofs from the
        ledger's leaves); writes NOTE with the verified cosignature to OUT.
    interop_aics.py check NOTE LOG_VKEY WITNESS_VKEY...
        aics's checkpoint verifier: the log's signature and a cosignature by every witness.

Each prints one JSON object on stdout and exits 0 if everything held, 1 if not."""

import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
from independent_verify import event_hash  # noqa: E402

import aics_tlog  # noqa: E402
from aics_tlog import (  # noqa: E402
    FileSystemTileReader,
    HttpTileReader,
    MerkleTree,
    audit_tiles,
    consistency_proof_from_tiles,
    inclusion_proof_from_tiles,
    parse_checkpoint,
    parse_note,
    parse_vkey,
    tree_root_from_tiles,
    verify_checkpoint,
    verify_consistency,
    verify_leaf_inclusion,
)


def leaves(ledger):
    """The event hash of every frame (ledger-format.md §1-§3: a 16-byte header, then
    4-byte big-endian body length, body, 64-byte signature)."""
    data = open(ledger, "rb").read()
    off, out = 16, []
    while off < len(data):
        (n,) = struct.unpack(">I", data[off:off + 4])
        out.append(event_hash(data[off + 4:off + 4 + n]))
        off += 4 + n + 64
    return out


def tiles(source, ledger, *bundles):
    if source.startswith("http"):
        reader = HttpTileReader(source, proxies={})
        note = reader.read_checkpoint()
    else:
        reader = FileSystemTileReader(source)
        note = open(os.path.join(source, "checkpoint"), "rb").read()
    cp = parse_checkpoint(parse_note(note).text)
    data = leaves(ledger)[:cp.size]
    tree = MerkleTree(data)
    out = {"size": cp.size, "checks": 0, "failed": []}

    def check(ok, what):
        out["checks"] += 1
        if not ok:
            out["failed"].append(what)

    root = tree_root_from_tiles(reader, cp.size)
    check(root == cp.root, "the root from the tiles is the checkpoint's")
    check(tree.root() == cp.root, "the root of the ledger's leaves is the checkpoint's")
    report = audit_tiles(reader, cp.size, cp.root)
    out["tiles_authenticated"] = report.tiles
    out["bundles_authenticated"] = report.bundles
    n = cp.size
    picks = sorted({0, 1, n // 3, n // 2, 255, 256, 257, 65535, 65536, n - 2, n - 1} & set(range(n)))
    for i in picks:
        p = inclusion_proof_from_tiles(reader, i, n)
        check(p == tree.inclusion_proof(i, n), f"inclusion proof of leaf {i} from tiles equals the tree's")
        check(verify_leaf_inclusion(data[i], i, n, p, cp.root), f"inclusion proof of leaf {i} verifies")
    for m in sorted({1, 2, 7, 256, 300, 65536, n // 2, n - 1} & set(range(1, n))):
        p = consistency_proof_from_tiles(reader, m, n)
        check(p == tree.consistency_proof(m, n), f"consistency proof {m}->{n} from tiles equals the tree's")
        check(verify_consistency(m, n, tree.root(m), cp.root, p), f"consistency proof {m}->{n} verifies")
        # An older root, from the same tiles.
        check(tree_root_from_tiles(reader, m, n) == tree.root(m), f"root of size {m} from tiles of {n}")
    out["bundle_events"] = 0
    for bundle in bundles:
        manifest = json.load(open(os.path.join(bundle, "manifest.json")))
        check(manifest["checkpoint"]["size"] == n, "the bundle is of the tiles' tree")
        for e in manifest["events"]:
            ours = [bytes.fromhex(h) for h in e["proof"]]
            check(ours == inclusion_proof_from_tiles(reader, e["seq"], n),
                  f"keyledger's proof of seq {e['seq']} equals the one from tiles")
        out["bundle_events"] += len(manifest["events"])
    return out


def feed(url, vkey, note_path, ledger, out_path, state):
    from aics_witness.feeder import WitnessClient, WitnessRejected, merge_cosignatures

    note = open(note_path, "rb").read()
    tree = MerkleTree(leaves(ledger))
    client = WitnessClient(url, vkey, state_path=state, max_attempts=2)
    try:
        lines = client.submit(note, lambda old, new: tree.consistency_proof(old, new))
    except WitnessRejected as e:
        return {"cosigned": False, "status": e.status, "message": e.message}
    finally:
        client.close()
    merged = merge_cosignatures(note, lines)
    with open(out_path, "xb") as fh:
        fh.write(merged)
    return {"cosigned": True, "lines": lines}


def check(note_path, log_vkey, witness_vkeys):
    note = parse_note(open(note_path, "rb").read())
    keys = [parse_vkey(v) for v in witness_vkeys]
    r = verify_checkpoint(note, parse_vkey(log_vkey), keys, quorum=len(keys))
    return {"ok": bool(r.ok), "log_ok": bool(r.log_ok), "cosignatures": r.cosignature_count,
            "timestamps": r.timestamps, "error": r.error}


def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "tiles":
        r = tiles(*args)
        ok = not r["failed"]
    elif cmd == "feed":
        r = feed(*args)
        ok = r["cosigned"]
    elif cmd == "check":
        r = check(args[0], args[1], args[2:])
        ok = r["ok"]
    else:
        raise SystemExit(f"unknown command {cmd}")
    r["aics_tlog"] = aics_tlog.__version__
    print(json.dumps(r))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
