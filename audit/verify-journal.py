#!/usr/bin/env python3
"""Verifies a ztgw journal directory, written from docs/journal.md ("Verifying a
journal") alone, as an auditor independent of ztgw would: the standard library and
PyPI's `cryptography` (Ed25519).

    verify-journal.py DIR [--public-key journal.pub] [--checkpoint kept-checkpoint.json]

Exit 0 and "intact: N records" when the journal is intact; exit 7 and "damaged: WHY"
when it is not; exit 2 on a wrong command line or unreadable key or checkpoint.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

BODY_HEADER = 17
MAX_PAYLOAD = 1024 * 1024


class Damaged(Exception):
    pass


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def leaf_hash(body):
    return sha256(b"\x00", body)


def node_hash(left, right):
    return sha256(b"\x01", left, right)


class Frontier:
    """The roots of the perfect subtrees covering the leaves so far, largest first."""

    def __init__(self, size=0, nodes=None):
        self.size = size
        self.nodes = list(nodes or [])

    def push(self, h):
        size = self.size
        while size & 1:
            h = node_hash(self.nodes.pop(), h)
            size >>= 1
        self.nodes.append(h)
        self.size += 1

    def root(self):
        if not self.nodes:
            return sha256(b"")
        acc = self.nodes[-1]
        for left in reversed(self.nodes[:-1]):
            acc = node_hash(left, acc)
        return acc


def unhex32(s, what):
    try:
        b = bytes.fromhex(s)
    except (TypeError, ValueError):
        raise Damaged(f"{what} is not hex")
    if len(b) != 32:
        raise Damaged(f"{what} is not 32 bytes")
    return b


def head_message(h):
    return (
        b"ztgw-journal-v1 tree-head\x00"
        + h["gateway"].encode()
        + b"\x00"
        + struct.pack("<Q", h["size"])
        + h["root"].encode()
        + b"\x00"
        + h["chain"].encode()
        + b"\x00"
        + struct.pack("<q", h["time_ms"])
    )


def purge_message(p):
    m = b"ztgw-journal-v1 purge\x00" + p["gateway"].encode() + b"\x00"
    m += struct.pack("<Q", p["first_seq"]) + p["chain"].encode() + b"\x00"
    for n in p["frontier"]["nodes"]:
        m += unhex32(n, "a frontier node")
    m += struct.pack("<Q", p["frontier"]["size"])
    for s in p["segments_removed"]:
        m += s.encode() + b"\x00"
    return m + struct.pack("<q", p["time_ms"])


def signature_ok(key, message, signature):
    if key is None:
        return True
    try:
        key.verify(base64.b64decode(signature, validate=True), message)
        return True
    except (InvalidSignature, ValueError):
        return False


def key_id(raw):
    return hashlib.sha256(raw).digest()[:8].hex()


def frames(data, name):
    """Yields (offset, kind, seq, body, hash) of each frame; a cut or damaged frame is
    damage."""
    at = 0
    while at < len(data):
        if at + 4 > len(data):
            raise Damaged(f"{name} at byte {at}: the record is cut short")
        (length,) = struct.unpack_from("<I", data, at)
        if not BODY_HEADER <= length <= BODY_HEADER + MAX_PAYLOAD:
            raise Damaged(f"{name} at byte {at}: impossible record length")
        end = at + 4 + length + 32
        if end > len(data):
            raise Damaged(f"{name} at byte {at}: the record is cut short")
        body = data[at + 4 : at + 4 + length]
        if body[0] not in (0, 1, 2):
            raise Damaged(f"{name} at byte {at}: unknown record kind")
        (seq,) = struct.unpack_from("<Q", body, 1)
        yield at, body[0], seq, body, data[at + 4 + length : end]
        at = end


def verify(directory, key_raw=None, kept=None):
    key = Ed25519PublicKey.from_public_bytes(key_raw) if key_raw else None
    if kept is not None and not signature_ok(key, head_message(kept), kept["signature"]):
        raise Damaged("the kept checkpoint does not verify with the journal key")
    gateway = None
    next_seq = 0
    prev = None
    frontier = Frontier()
    removed = set()
    purge_path = os.path.join(directory, "purged.json")
    if os.path.exists(purge_path):
        with open(purge_path) as f:
            p = json.load(f)
        if not signature_ok(key, purge_message(p), p["signature"]):
            raise Damaged("purged.json: its signature does not verify")
        if p["frontier"]["size"] != p["first_seq"]:
            raise Damaged("purged.json: its frontier does not match its first record")
        gateway = unhex32(p["gateway"], "the purge record's gateway")
        next_seq = p["first_seq"]
        prev = unhex32(p["chain"], "the purge record's chain")
        frontier = Frontier(
            p["frontier"]["size"],
            [unhex32(n, "a frontier node") for n in p["frontier"]["nodes"]],
        )
        removed = set(p["segments_removed"])
    first_seq = next_seq
    names = sorted(
        n for n in os.listdir(directory) if re.fullmatch(r"seg-[0-9]{8}\.zj", n)
    )
    if not names:
        raise Damaged("there is no journal segment here")
    records = unsigned = 0
    kept_matched = None if kept is None else False
    for index, name in enumerate(names):
        if name in removed:
            continue
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        if not data:
            # Only the last segment may be empty (a file the writer has just begun).
            if index == len(names) - 1:
                break
            raise Damaged(f"{name}: the segment is empty")
        first = True
        for at, kind, seq, body, stored in frames(data, name):
            where = f"record {seq} ({name} at byte {at})"
            if seq != next_seq:
                raise Damaged(f"{where}: expected record {next_seq}")
            payload = body[BODY_HEADER:]
            if first:
                if kind != 0:
                    raise Damaged(f"{where}: a segment must start with its header")
                h = json.loads(payload)
                if h.get("magic") != "ztgw-journal" or h.get("version") != 1:
                    raise Damaged(f"{where}: not a version 1 ztgw journal segment")
                if h["segment"] != int(name[4:12]) or h["first_seq"] != seq:
                    raise Damaged(f"{where}: the header does not match its place")
                g = unhex32(h["gateway"], "the header's gateway")
                if gateway is None:
                    gateway = g
                    if next_seq == 0:
                        prev = sha256(b"ztgw-journal-v1 genesis\x00", g)
                elif g != gateway:
                    raise Damaged(f"{where}: a segment of another gateway")
                first = False
            elif kind == 0:
                raise Damaged(f"{where}: a segment header in the middle of a segment")
            leaf = leaf_hash(body)
            if sha256(b"ztgw-journal-v1 record\x00", prev, leaf) != stored:
                raise Damaged(f"{where}: its hash does not match")
            if kind == 2:
                c = json.loads(payload)
                if c["gateway"] != gateway.hex() or c["size"] != seq:
                    raise Damaged(f"{where}: the checkpoint does not match its place")
                if c["root"] != frontier.root().hex() or c["chain"] != prev.hex():
                    raise Damaged(f"{where}: the checkpoint does not match the records before it")
                if key is not None and (
                    c["key_id"] != key_id(key_raw)
                    or not signature_ok(key, head_message(c), c["signature"])
                ):
                    raise Damaged(f"{where}: the checkpoint's signature does not verify")
                unsigned = 0
            else:
                unsigned += 1
            if kept is not None and frontier.size == kept["size"]:
                if kept["root"] != frontier.root().hex() or kept["chain"] != prev.hex():
                    raise Damaged("the journal differs from the checkpoint you kept")
                kept_matched = True
            frontier.push(leaf)
            prev = stored
            next_seq += 1
            records += 1
    if unsigned:
        raise Damaged(f"the last {unsigned} records are not covered by a signed checkpoint")
    if kept is not None and not kept_matched and frontier.size == kept["size"]:
        if kept["root"] != frontier.root().hex() or kept["chain"] != prev.hex():
            raise Damaged("the journal differs from the checkpoint you kept")
        kept_matched = True
    # A kept checkpoint older than the retained journal (purged since) cannot be compared.
    if kept is not None and not kept_matched and kept["size"] >= first_seq:
        raise Damaged(
            f"the journal was truncated: the checkpoint you kept covers {kept['size']} records, the journal has {next_seq}"
        )
    return records


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--public-key")
    ap.add_argument("--checkpoint")
    a = ap.parse_args()
    try:
        key_raw = None
        if a.public_key:
            with open(a.public_key) as f:
                key_raw = base64.b64decode(f.read().strip(), validate=True)
            if len(key_raw) != 32:
                raise ValueError("not 32 bytes")
        kept = None
        if a.checkpoint:
            with open(a.checkpoint) as f:
                kept = json.load(f)
    except (OSError, ValueError) as e:
        print(f"usage: {e}", file=sys.stderr)
        return 2
    try:
        n = verify(a.dir, key_raw, kept)
    except (Damaged, KeyError, TypeError, ValueError) as e:
        print(f"damaged: {e}")
        return 7
    print(f"intact: {n} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
