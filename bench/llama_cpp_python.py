"""The anchor of `wolf bench`'s GGUF rows: llama-cpp-python on the same model, prompt,
thread count and greedy decoding as wolf's `gguf` backend.

Run by `wolf bench` with `.wolf/venv/bin/python`, as a small line protocol so that the
bench can alternate single repetitions of the two sides. The first stdin line is a
JSON request: {"model", "threads", "context", "flash_attn", "messages", "max_tokens"}.
The script loads the model, makes one untimed warm-up call, and prints
{"version": ...}. Then each further stdin line asks for one repetition, answered by
one JSON line: the wall time of a 1-token chat completion ("first_s": prompt
processing and one sample) and of a `max_tokens` one ("long_s": the same prompt, then
generation), each from an empty cache (`reset()`, so no prefix is reused), with the
token counts and the text. End of input ends the script.
"""

import json
import sys
import time

import llama_cpp
from llama_cpp import Llama


def main() -> None:
    request = json.loads(sys.stdin.readline())
    llm = Llama(
        model_path=request["model"],
        n_ctx=request["context"],
        n_threads=request["threads"],
        n_threads_batch=request["threads"],
        flash_attn=request["flash_attn"],
        verbose=False,
    )
    messages = request["messages"]

    def complete(max_tokens: int) -> tuple[float, dict]:
        llm.reset()
        start = time.perf_counter()
        reply = llm.create_chat_completion(
            messages, max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0
        )
        return time.perf_counter() - start, reply

    complete(8)  # warm-up
    print(json.dumps({"version": llama_cpp.__version__}), flush=True)
    for _ in sys.stdin:
        first_s, _ = complete(1)
        long_s, reply = complete(request["max_tokens"])
        print(
            json.dumps(
                {
                    "first_s": first_s,
                    "long_s": long_s,
                    "prompt_tokens": reply["usage"]["prompt_tokens"],
                    "completion_tokens": reply["usage"]["completion_tokens"],
                    "text": reply["choices"][0]["message"]["content"],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
