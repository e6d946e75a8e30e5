"""Fixtures for the ICN unit tests: a forwarder on ``twisted.internet.task.Clock`` (advance it
instead of sleeping) and DummyFaces attached to it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from icn_harness import DummyFace
from twisted.internet.task import Clock

from sflow.icn.face.base import FaceScope, LinkType
from sflow.icn.forwarder import Forwarder, ForwarderConfig


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_forwarder(clock: Clock) -> Callable[..., Forwarder]:
    def make(**config: object) -> Forwarder:
        return Forwarder(clock, ForwarderConfig(**config))  # type: ignore[arg-type]

    return make


@pytest.fixture
def forwarder(make_forwarder: Callable[..., Forwarder]) -> Forwarder:
    return make_forwarder()


@pytest.fixture
def add_face(forwarder: Forwarder) -> Callable[..., DummyFace]:
    def add(scope: FaceScope = FaceScope.NON_LOCAL, link_type: LinkType = LinkType.POINT_TO_POINT) -> DummyFace:
        face = DummyFace(scope, link_type)
        forwarder.add_face(face)
        return face

    return add
