#!/usr/bin/env python3
"""Records the prompts of the pipeline's LLM stages, and joins them to reference captions:
the training data of the fixture fuser (tools/train_fuser.py).

  serve  a loopback-only (127.0.0.1) OpenAI-compatible chat-completions server. Each
         POST /v1/chat/completions appends {"n", "model", "max_tokens", "messages"} as one
         line to --log and replies `reply <n>` (n counts requests, 1, 2, ...; it goes on
         from the lines already in the log, so one log can serve several runs and every
         reply is unique in it), with a usage of the prompt's and the reply's word counts.
         GET /v1/models lists one model. Standard library only.

  join   reads `wolf export --run RUN` (JSONL: video, source, caption, ...) and the log:
         each exported caption that is `reply <n>` joins request n to its video and source
         (source `wolf`: the fusion; `MODEL:summary`: the temporal summary), and the
         video's reference caption (the world's annotations.json, as `wolf synth` writes
         it) is the target. Writes training examples, one JSON object a line:
         {"seed", "video", "task": "summary" | "fusion", "source", "request", "messages",
         "target"}.

Example (wolf from the checkout root, its LLM entry `backend = "openai"`,
`base_url = "http://127.0.0.1:8765/v1"`):

  python3 tools/record_prompts.py serve --port 8765 --log /tmp/fuser/requests.jsonl &
  wolf --db /tmp/fuser/wolf.db caption --dataset train-1001 --config CONFIG --run rec-1001
  wolf --db /tmp/fuser/wolf.db export --run rec-1001 > /tmp/fuser/rec-1001.jsonl
  python3 tools/record_prompts.py join --log /tmp/fuser/requests.jsonl \\
      --export /tmp/fuser/rec-1001.jsonl --world /tmp/fuser/world-1001 --seed 1001 \\
      --out /tmp/fuser/examples-1001.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPLY = re.compile(r"^reply (\d+)$")
MODEL_ID = "prompt-recorder"


# ---------------------------------------------------------------- serve

class Recorder:
    """The request counter and the log, shared by the handler threads."""

    def __init__(self, log: Path):
        self.log = log
        self.lock = threading.Lock()
        log.parent.mkdir(parents=True, exist_ok=True)
        self.n = 0
        if log.exists():
            with log.open() as f:
                for line in f:
                    if line.strip():
                        self.n = max(self.n, json.loads(line)["n"])

    def record(self, body: dict) -> int:
        with self.lock:
            self.n += 1
            line = {"n": self.n, "model": body.get("model"),
                    "max_tokens": body.get("max_tokens", body.get("max_completion_tokens")),
                    "messages": body.get("messages")}
            with self.log.open("a") as f:
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
            return self.n


def words(messages) -> int:
    n = 0
    for m in messages or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            n += len(content.split())
        elif isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            n += sum(len(str(p.get("text", "")).split()) for p in content if isinstance(p, dict))
    return n


def handler_for(recorder: Recorder, quiet: bool):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # noqa: N802 (http.server's name)
            if not quiet:
                sys.stderr.write("recorder: " + fmt % args + "\n")

        def reply(self, code: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self.reply(200, {"object": "list", "data": [
                    {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "wolf-tools"}]})
            else:
                self.reply(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self.reply(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            try:
                body = json.loads(raw)
                if not isinstance(body.get("messages"), list):
                    raise ValueError("no messages")
            except ValueError as e:
                self.reply(400, {"error": {"message": f"bad request: {e}", "type": "invalid_request_error"}})
                return
            n = recorder.record(body)
            text = f"reply {n}"
            self.reply(200, {
                "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0,
                "model": body.get("model") or MODEL_ID,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": words(body["messages"]), "completion_tokens": 2,
                          "total_tokens": words(body["messages"]) + 2},
            })

    return Handler


def serve(a) -> None:
    recorder = Recorder(a.log)
    server = ThreadingHTTPServer(("127.0.0.1", a.port), handler_for(recorder, a.quiet))
    port = server.server_address[1]
    if a.port_file:
        a.port_file.write_text(f"{port}\n")
    print(f"recording to {a.log} on http://127.0.0.1:{port}/v1 (next reply {recorder.n + 1})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# ---------------------------------------------------------------- join

def task_of(source: str) -> str | None:
    if source == "wolf":
        return "fusion"
    if source.endswith(":summary"):
        return "summary"
    return None


def references(world: Path) -> dict[str, str]:
    ann = json.loads((world / "annotations.json").read_text())
    return {k: (v["output"] if isinstance(v, dict) else v) for k, v in ann.items()}


def join(a) -> None:
    requests = {}
    with a.log.open() as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                requests[r["n"]] = r
    refs = references(a.world)
    out, skipped = [], {}
    with a.export.open() as f:
        for line in f:
            if not line.strip():
                continue
            c = json.loads(line)
            m = REPLY.match((c.get("caption") or "").strip())
            if not m:
                continue
            task = task_of(c["source"])
            if task is None or (a.tasks and task not in a.tasks):
                skipped[c["source"]] = skipped.get(c["source"], 0) + 1
                continue
            n = int(m.group(1))
            if n not in requests:
                sys.exit(f"{c['video']} {c['source']}: `reply {n}` is not in {a.log}")
            video = c["video"]
            key = video if video in refs else Path(video).name
            if key not in refs:
                sys.exit(f"{video} has no reference caption in {a.world / 'annotations.json'}")
            out.append({"seed": a.seed, "video": video, "task": task, "source": c["source"],
                        "request": n, "messages": requests[n]["messages"], "target": refs[key]})
    out.sort(key=lambda e: (e["task"], e["video"]))
    mode = "a" if a.append else "w"
    with a.out.open(mode) as f:
        for e in out:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    counts = {t: sum(e["task"] == t for e in out) for t in ("summary", "fusion")}
    print(f"seed {a.seed}: {counts} examples -> {a.out}" + (f" (skipped sources {skipped})" if skipped else ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="record chat requests, reply `reply <n>`")
    s.add_argument("--port", type=int, default=8765, help="0: any free port")
    s.add_argument("--log", type=Path, required=True)
    s.add_argument("--port-file", type=Path, help="write the port here once listening")
    s.add_argument("--quiet", action="store_true")
    j = sub.add_parser("join", help="join exported `reply <n>` captions to requests and references")
    j.add_argument("--log", type=Path, required=True)
    j.add_argument("--export", type=Path, required=True, help="`wolf export --run RUN` JSONL")
    j.add_argument("--world", type=Path, required=True, help="the `wolf synth` folder (annotations.json)")
    j.add_argument("--seed", type=int, required=True, help="the world's seed, recorded in each example")
    j.add_argument("--out", type=Path, required=True)
    j.add_argument("--tasks", nargs="*", choices=["summary", "fusion"], help="keep only these")
    j.add_argument("--append", action="store_true")
    a = p.parse_args()
    serve(a) if a.cmd == "serve" else join(a)


if __name__ == "__main__":
    main()
