"""scripts/wait_for_primary.py, which CI runs before the suite on a MongoDB replica set, against a
node that answers as mongod does while a set starts."""

from __future__ import annotations

import importlib.util

import pytest
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

from .support import ROOT, run_script

spec = importlib.util.spec_from_file_location("wait_for_primary", ROOT / "scripts" / "wait_for_primary.py")
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


class Node:
    """A mongod started with --replSet: down for `down` calls, then not initiated until replSetInitiate,
    then primary `election` hellos later."""

    def __init__(self, down: int = 0, initiated: bool = False, election: int = 2):
        self.down = down
        self.initiated = initiated
        self.election = election
        self.initiations: list[dict] = []
        self.admin = self

    def command(self, name: str, value=None):
        if self.down:
            self.down -= 1
            raise ServerSelectionTimeoutError("connection refused")
        if name == "hello":
            if self.initiated and self.election:
                self.election -= 1  # electing itself
                return {"isWritablePrimary": False}
            return {"isWritablePrimary": self.initiated}
        if name == "replSetGetStatus":
            if not self.initiated:
                raise OperationFailure("no replset config has been received", code=94)
            return {"ok": 1}
        assert name == "replSetInitiate"
        assert not self.initiated, "initiated twice"
        self.initiated = True
        self.initiations.append(value)
        return {"ok": 1}


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def wait(node: Node, timeout: float = 60) -> bool:
    clock = Clock()
    return script.wait_for_primary(node, "rs0", "127.0.0.1:27017", timeout, clock, clock.sleep)


def test_a_new_node_is_initiated_once_and_waited_for_until_primary():
    node = Node(down=3)
    assert wait(node) is True
    assert node.initiations == [{"_id": "rs0", "members": [{"_id": 0, "host": "127.0.0.1:27017"}]}]
    assert node.election == 0


def test_an_initiated_set_is_left_as_it_is():
    node = Node(initiated=True, election=0)
    assert wait(node) is True
    assert node.initiations == []


def test_a_node_that_never_answers_is_given_up_after_the_timeout():
    assert wait(Node(down=1_000), timeout=5) is False


def test_other_errors_are_not_taken_for_a_set_to_initiate():
    class Refusing(Node):
        def command(self, name, value=None):
            if name == "replSetGetStatus":
                raise OperationFailure("command replSetGetStatus requires authentication", code=13)
            return super().command(name, value)

    with pytest.raises(OperationFailure, match="requires authentication"):
        wait(Refusing())


def test_the_command_says_when_no_primary_came():
    result = run_script(
        "wait_for_primary.py", "mongodb://127.0.0.1:1", "--member", "127.0.0.1:1", "--timeout", "1"
    )
    assert result.returncode == 1
    assert "mongodb://127.0.0.1:1 is not a writable primary after 1 s" in result.stderr
