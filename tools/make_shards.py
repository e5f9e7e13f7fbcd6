#!/usr/bin/env python3
"""Writes WebDataset shards shaped like video2dataset's output, from clips on disk.

For shard N of the output folder (numbered from 0, five digits):
- `0000N.tar` holds, per sample, `KEY.mp4` (the clip's bytes), `KEY.txt` (its caption)
  and `KEY.json` (video2dataset's per-sample fields: url, key, status, error_message,
  caption, width, height);
- `0000N.parquet` holds the same fields one row a sample (only when pyarrow imports);
- `0000N_stats.json` counts the shard's samples.

KEY is video2dataset's: the shard number (5 digits) then the sample's index in the shard
(4 digits). A clip's caption is the `.txt` beside it (`a.mp4` -> `a.txt`), else its name.

Used by the tests (`tests/intake.rs`) and by the bench (`wolf-bench --only shards`).

    make_shards.py --clips DIR --out DIR [--per-shard N] [--samples N] [--gzip]
"""

import argparse
import io
import json
import os
import sys
import tarfile


def caption_of(clip):
    sidecar = os.path.splitext(clip)[0] + ".txt"
    if os.path.exists(sidecar):
        with open(sidecar, encoding="utf-8") as f:
            return f.read().strip()
    return os.path.basename(clip)


def add(tar, name, data, mtime):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", required=True, help="folder of .mp4 clips")
    parser.add_argument("--out", required=True)
    parser.add_argument("--per-shard", type=int, default=100)
    parser.add_argument(
        "--samples",
        type=int,
        default=0,
        help="samples in all (clips repeat in order); default: one per clip",
    )
    parser.add_argument("--gzip", action="store_true", help="write .tar.gz shards")
    args = parser.parse_args()

    clips = sorted(
        os.path.join(args.clips, c) for c in os.listdir(args.clips) if c.endswith(".mp4")
    )
    if not clips:
        sys.exit(f"no .mp4 clips in {args.clips}")
    total = args.samples or len(clips)
    os.makedirs(args.out, exist_ok=True)
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        pyarrow = None
    # A fixed time, so that the same clips give the same bytes.
    mtime = 1_700_000_000
    shard_count = (total + args.per_shard - 1) // args.per_shard
    for shard in range(shard_count):
        rows = []
        ending = ".tar.gz" if args.gzip else ".tar"
        path = os.path.join(args.out, f"{shard:05d}{ending}")
        with tarfile.open(path + ".partial", "w:gz" if args.gzip else "w", format=tarfile.GNU_FORMAT) as tar:
            for index in range(args.per_shard):
                n = shard * args.per_shard + index
                if n >= total:
                    break
                clip = clips[n % len(clips)]
                key = f"{shard:05d}{index:04d}"
                caption = caption_of(clip)
                with open(clip, "rb") as f:
                    video = f.read()
                row = {
                    "url": os.path.abspath(clip),
                    "key": key,
                    "status": "success",
                    "error_message": None,
                    "caption": caption,
                    "width": 64,
                    "height": 48,
                }
                add(tar, f"{key}.mp4", video, mtime)
                add(tar, f"{key}.txt", caption.encode(), mtime)
                add(tar, f"{key}.json", json.dumps(row).encode(), mtime)
                rows.append(row)
        os.replace(path + ".partial", path)
        if pyarrow is not None:
            table = pyarrow.Table.from_pylist(rows)
            pyarrow.parquet.write_table(table, os.path.join(args.out, f"{shard:05d}.parquet"))
        stats = {"count": len(rows), "successes": len(rows), "failed_to_download": 0}
        with open(os.path.join(args.out, f"{shard:05d}_stats.json"), "w") as f:
            json.dump(stats, f)


if __name__ == "__main__":
    main()
