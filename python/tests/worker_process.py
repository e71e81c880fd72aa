"""A remote worker process written with the liminal package, for the tests.

    python worker_process.py ENDPOINT GROUP ID MODE

MODE ``hold`` keeps every delivery unanswered; ``ack`` acknowledges it;
``raise`` raises from the handler. Prints ``joined``, then ``got <n>`` per
delivery, on stdout; end of input leaves gracefully.
"""

from __future__ import annotations

import sys

import liminal


def main() -> None:
    endpoint, group, consumer_id, mode = sys.argv[1:5]
    held = []

    def handle(delivery: liminal.Delivery) -> liminal.Verdict:
        print(f"got {delivery.message['n']}", flush=True)
        if mode == "raise":
            raise RuntimeError(f"worker process failed on {delivery.message['n']}")
        if mode == "hold":
            held.append(delivery.keep())
            return liminal.Verdict.DEFER
        return liminal.Verdict.ACK

    with liminal.Worker(group, consumer_id, handle, connect=[endpoint]) as worker:
        worker.wait_joined(timeout=30)
        print("joined", flush=True)
        sys.stdin.read()
    print("left", flush=True)


if __name__ == "__main__":
    main()
