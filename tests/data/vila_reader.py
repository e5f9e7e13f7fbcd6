#!/usr/bin/env python3
"""Reads `wolf recaption` caption files the way VILA's data loaders do.

VILA (llava/data/dataset.py, the `caption_choice` path of its WebDataset datasets)
overrides a sample's caption from a folder of JSON files, one per tar shard: the
shard's tar name with `.tar` replaced by `.json`, loaded whole with `json.load`
(cached per file), and the sample looked up by its WebDataset key, `["output"]` for
images and `["summary"]["output"]` for videos. A missing file or key falls back to
the original caption; here it is reported as missing instead.

Usage: vila_reader.py CAPTION_DIR SHARD.tar:KEY ...

Prints one JSON object: {"found": n, "missing": ["SHARD.tar:KEY", ...],
"files": n, "captions": {"SHARD.tar:KEY": caption, ...}}. Only the standard library
is used, so that the tests need no Python packages.
"""

import functools
import json
import os.path as osp
import sys


@functools.lru_cache(maxsize=64)
def lru_json_load(path):
    """VILA's `lru_json_load`: each shard's file is read once."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def lookup(caption_dir, tar_name, key):
    """The caption of `key` in shard `tar_name`, or None, as VILA's loader finds it."""
    shard_json_path = osp.join(caption_dir, tar_name.replace(".tar", ".json"))
    try:
        shard_json = lru_json_load(shard_json_path)
    except (FileNotFoundError, json.decoder.JSONDecodeError):
        return None
    entry = shard_json.get(key)
    if not isinstance(entry, dict):
        return None
    if "output" in entry:
        return entry["output"]
    summary = entry.get("summary")
    if isinstance(summary, dict):
        return summary.get("output")
    return None


def main(argv):
    if len(argv) < 2:
        sys.stderr.write("usage: vila_reader.py CAPTION_DIR SHARD.tar:KEY ...\n")
        return 2
    caption_dir, wanted = argv[0], argv[1:]
    captions, missing = {}, []
    for item in wanted:
        tar_name, sep, key = item.partition(".tar:")
        if not sep:
            sys.stderr.write(f"`{item}` is not SHARD.tar:KEY\n")
            return 2
        caption = lookup(caption_dir, tar_name + ".tar", key)
        if isinstance(caption, str):
            captions[item] = caption
        else:
            missing.append(item)
    summary = {
        "found": len(captions),
        "missing": missing,
        "files": lru_json_load.cache_info().currsize,
        "captions": captions,
    }
    json.dump(summary, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
