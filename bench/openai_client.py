"""The anchor of wolf's HTTP benchmark: Python's `openai.AsyncOpenAI` under load.

Sends REQUESTS chat requests with IN_FLIGHT at once (after a warm-up of IN_FLIGHT
requests) to an OpenAI-compatible server and prints one JSON line: the wall time of
the timed requests, how many succeeded, and this process's CPU seconds (all threads)
over them. The same shape as `wolf http-load`: IN_FLIGHT workers share one counter.
The connection pool keeps IN_FLIGHT connections alive (the default keeps 100), so the
anchor is measured at its best.
"""

import argparse
import asyncio
import json
import time

import openai

try:  # openai 3 moved to httpx2
    import httpx2 as httpx
except ImportError:
    import httpx


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--in-flight", type=int, default=256)
    args = parser.parse_args()

    limits = httpx.Limits(max_connections=args.in_flight, max_keepalive_connections=args.in_flight)
    client = openai.AsyncOpenAI(
        base_url=args.base_url,
        api_key="unused",
        max_retries=2,
        timeout=60.0,
        http_client=openai.DefaultAsyncHttpxClient(limits=limits),
    )

    async def run(total: int) -> int:
        remaining = iter(range(total))
        ok = 0

        async def worker() -> None:
            nonlocal ok
            for _ in remaining:
                try:
                    reply = await client.chat.completions.create(
                        model="bench",
                        messages=[{"role": "user", "content": "Say hello."}],
                        max_tokens=16,
                        temperature=0.0,
                    )
                    ok += bool(reply.choices[0].message.content)
                except openai.OpenAIError:
                    pass

        await asyncio.gather(*(worker() for _ in range(args.in_flight)))
        return ok

    await run(args.in_flight)
    cpu = time.process_time()
    start = time.perf_counter()
    ok = await run(args.requests)
    seconds = time.perf_counter() - start
    cpu_s = time.process_time() - cpu
    await client.close()
    print(json.dumps({"seconds": seconds, "ok": ok, "cpu_s": cpu_s, "openai": openai.__version__}))


if __name__ == "__main__":
    asyncio.run(main())
