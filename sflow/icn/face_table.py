"""The face table: face id → face (NFD ``daemon/fw/face-table.cpp``).

Ids below 256 are reserved (1 = the internal management face, 254 = the content store, 255 =
null); other faces get increasing ids from 256 and ids are never reused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sflow.icn.face.base import FIRST_FACE_ID, INVALID_FACE_ID, Face


class FaceTable:
    def __init__(self) -> None:
        self._faces: dict[int, Face] = {}
        self._next_id = FIRST_FACE_ID
        self.after_add: list[Callable[[Face], None]] = []
        self.before_remove: list[Callable[[Face], None]] = []

    def __len__(self) -> int:
        return len(self._faces)

    def __iter__(self) -> Iterator[Face]:
        return iter(list(self._faces.values()))

    def get(self, face_id: int) -> Face | None:
        return self._faces.get(face_id)

    def add(self, face: Face, face_id: int | None = None) -> int:
        """Give ``face`` an id (the next free one, or a reserved one) and add it."""
        if face.face_id != INVALID_FACE_ID:
            raise ValueError(f"face already has id {face.face_id}")
        if face_id is None:
            face_id = self._next_id
            self._next_id += 1
        elif face_id in self._faces:
            raise ValueError(f"face id {face_id} is taken")
        face.face_id = face_id
        self._faces[face_id] = face
        for callback in self.after_add:
            callback(face)
        return face_id

    def remove(self, face: Face) -> None:
        if self._faces.get(face.face_id) is not face:
            return
        for callback in self.before_remove:
            callback(face)
        del self._faces[face.face_id]
