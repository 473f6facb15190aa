#!/usr/bin/env python3
"""Writes shared/data/<name>.tokens.zlib from OpenAI's <name>.tiktoken.gz.

A .tiktoken file is `<base64 token> <rank>` per line with ranks 0..n in
order. The compact form keeps only what the ranks do not imply: each
token's bytes, length-prefixed (one byte; no token is over 255 bytes), in
rank order, zlib-compressed. 1.5 MB for both vocabularies instead of 2.4 MB
gzipped, and it needs no base64 decoding at start.

Usage: compact.py <dir holding cl100k_base.tiktoken.gz and o200k_base.tiktoken.gz>
       (bpe-openai 0.3.2 ships them in its `data/` directory)
"""
import base64
import gzip
import pathlib
import sys
import zlib

OUT = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def compact(src: pathlib.Path) -> bytes:
    lines = gzip.decompress(src.read_bytes()).splitlines()
    out = bytearray()
    for expected, line in enumerate(lines):
        token, rank = line.split()
        if int(rank) != expected:
            sys.exit(f"{src}: line {expected + 1}: rank {rank.decode()} out of order")
        raw = base64.b64decode(token)
        if not 0 < len(raw) < 256:
            sys.exit(f"{src}: line {expected + 1}: token of {len(raw)} bytes")
        out.append(len(raw))
        out += raw
    return zlib.compress(bytes(out), 9)


def main() -> None:
    src = pathlib.Path(sys.argv[1])
    for name in ("cl100k_base", "o200k_base"):
        data = compact(src / f"{name}.tiktoken.gz")
        (OUT / f"{name}.tokens.zlib").write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
