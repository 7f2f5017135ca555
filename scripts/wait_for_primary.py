"""Initiate a one-node MongoDB replica set if it is not yet, and wait until the node is a writable
primary (CI starts `mongod --replSet rs0` in a container, then runs the suite against it):

    python scripts/wait_for_primary.py mongodb://127.0.0.1:27017 --member 127.0.0.1:27017
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from pymongo import MongoClient
from pymongo.errors import ConnectionFailure, OperationFailure

NOT_YET_INITIALIZED = 94


def wait_for_primary(
    client: Any,
    replica_set: str,
    member: str,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Initiate the set with `member` when the node says it is not initiated; True once the node is a
    writable primary, False when `timeout` seconds passed first."""
    deadline = clock() + timeout
    while True:
        try:
            if client.admin.command("hello").get("isWritablePrimary"):
                return True
            client.admin.command("replSetGetStatus")
        except OperationFailure as exc:
            if exc.code != NOT_YET_INITIALIZED:
                raise
            client.admin.command(
                "replSetInitiate", {"_id": replica_set, "members": [{"_id": 0, "host": member}]}
            )
        except ConnectionFailure:
            pass  # not listening yet
        if clock() >= deadline:
            return False
        sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("uri", help="the node, such as mongodb://127.0.0.1:27017")
    parser.add_argument("--replica-set", default="rs0", help="the set's name [%(default)s]")
    parser.add_argument("--member", required=True, help="the node's host:port as clients will reach it")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait [%(default)s]")
    args = parser.parse_args(argv)
    client = MongoClient(args.uri, directConnection=True, serverSelectionTimeoutMS=2000)
    try:
        if not wait_for_primary(client, args.replica_set, args.member, args.timeout):
            print(f"{args.uri} is not a writable primary after {args.timeout:g} s", file=sys.stderr)
            return 1
    finally:
        client.close()
    print(f"{args.uri} is the writable primary of {args.replica_set}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
