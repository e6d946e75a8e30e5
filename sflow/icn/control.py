"""NFD management TLVs: ControlParameters and ControlResponse.

From the NFD "ControlCommand" wiki page: a command Interest is
``/localhost/nfd/<module>/<verb>/<ControlParameters>[/…signature…]``; the reply is a Data whose
Content is ``ControlResponse{StatusCode, StatusText, [ControlParameters]}``. Field numbers are those
of NFD's management protocol (``ndn-cxx/mgmt/nfd/control-parameters.hpp``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sflow.errors import DecodeError
from sflow.icn import tlv
from sflow.icn.name import Name

ROUTE_ORIGIN_APP = 0
ROUTE_ORIGIN_STATIC = 255
ROUTE_FLAG_CHILD_INHERIT = 1
ROUTE_FLAG_CAPTURE = 2


@dataclass(frozen=True, slots=True)
class ControlParameters:
    """The ControlParameters fields sflow's management uses; ``None`` means absent."""

    name: Name | None = None
    face_id: int | None = None
    uri: str | None = None
    local_uri: str | None = None
    origin: int | None = None
    cost: int | None = None
    capacity: int | None = None
    count: int | None = None
    flags: int | None = None
    mask: int | None = None
    strategy: Name | None = None
    expiration_period: int | None = None
    face_persistency: int | None = None
    mtu: int | None = None

    def encode_value(self) -> bytes:
        parts: list[bytes] = []
        if self.name is not None:
            parts.append(self.name.encode())
        if self.face_id is not None:
            parts.append(tlv.encode_nonneg_tlv(tlv.CP_FACE_ID, self.face_id))
        if self.uri is not None:
            parts.append(tlv.encode_tlv(tlv.CP_URI, self.uri.encode("utf-8")))
        if self.local_uri is not None:
            parts.append(tlv.encode_tlv(tlv.CP_LOCAL_URI, self.local_uri.encode("utf-8")))
        if self.origin is not None:
            parts.append(tlv.encode_nonneg_tlv(tlv.CP_ORIGIN, self.origin))
        if self.cost is not None:
            parts.append(tlv.encode_nonneg_tlv(tlv.CP_COST, self.cost))
        if self.capacity is not None:
            parts.append(tlv.encode_nonneg_tlv(tlv.CP_CAPACITY, self.capacity))
        if self.count is not None:
            parts.append(tlv.encode_nonneg_tlv(tlv.CP_COUNT, self.count))
        if self.flags is not None:
            parts.append(tlv.encode_nonneg_tlv(tlv.CP_FLAGS, self.flags))
        if self.mask is not None:
            parts.append(tlv.encode_nonneg_tlv(tlv.CP_MASK, self.mask))
        if self.strategy is not None:
            parts.append(tlv.encode_tlv(tlv.CP_STRATEGY, self.strategy.encode()))
        if self.expiration_period is not None:
            parts.append(tlv.encode_nonneg_tlv(tlv.CP_EXPIRATION_PERIOD, self.expiration_period))
        if self.face_persistency is not None:
            parts.append(tlv.encode_nonneg_tlv(tlv.CP_FACE_PERSISTENCY, self.face_persistency))
        if self.mtu is not None:
            parts.append(tlv.encode_nonneg_tlv(tlv.CP_MTU, self.mtu))
        return b"".join(parts)

    def encode(self) -> bytes:
        return tlv.encode_tlv(tlv.CONTROL_PARAMETERS, self.encode_value())


_INT_FIELDS = {
    tlv.CP_FACE_ID: "face_id",
    tlv.CP_ORIGIN: "origin",
    tlv.CP_COST: "cost",
    tlv.CP_CAPACITY: "capacity",
    tlv.CP_COUNT: "count",
    tlv.CP_FLAGS: "flags",
    tlv.CP_MASK: "mask",
    tlv.CP_EXPIRATION_PERIOD: "expiration_period",
    tlv.CP_FACE_PERSISTENCY: "face_persistency",
    tlv.CP_MTU: "mtu",
    tlv.CP_BASE_CONGESTION_MARKING_INTERVAL: "",
    tlv.CP_DEFAULT_CONGESTION_THRESHOLD: "",
}


def decode_control_parameters_value(buf: bytes, start: int, end: int) -> ControlParameters:
    values: dict[str, object] = {}
    for tlv_type, value_start, value_end in tlv.iter_tlvs(buf, start, end):
        if tlv_type == tlv.NAME:
            values["name"] = Name.from_wire(buf[value_start:value_end])
        elif tlv_type in _INT_FIELDS:
            key = _INT_FIELDS[tlv_type]
            number = tlv.decode_nonneg_int(buf, value_start, value_end)
            if key:
                values[key] = number
        elif tlv_type in (tlv.CP_URI, tlv.CP_LOCAL_URI):
            try:
                text = buf[value_start:value_end].decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError("ControlParameters Uri is not UTF-8") from None
            values["uri" if tlv_type == tlv.CP_URI else "local_uri"] = text
        elif tlv_type == tlv.CP_STRATEGY:
            inner_type, inner_start, inner_end = tlv.read_tlv(buf, value_start, value_end)
            if inner_type != tlv.NAME:
                raise DecodeError("ControlParameters Strategy must hold a Name")
            values["strategy"] = Name.from_wire(buf[inner_start:inner_end])
        elif tlv.is_critical(tlv_type):
            raise DecodeError(f"unrecognized critical element {tlv_type} in ControlParameters")
    params = ControlParameters()
    for key, value in values.items():
        object.__setattr__(params, key, value)
    return params


def decode_control_parameters(buf: bytes) -> ControlParameters:
    """Decode a whole ControlParameters element (as found in a command name component)."""
    buf = bytes(buf)
    tlv_type, start, end = tlv.read_tlv(buf, 0, len(buf))
    if tlv_type != tlv.CONTROL_PARAMETERS or end != len(buf):
        raise DecodeError("not a ControlParameters element")
    return decode_control_parameters_value(buf, start, end)


@dataclass(frozen=True, slots=True)
class ControlResponse:
    """A ControlResponse: status code (200 OK, 400 bad parameters, 403 unauthorized, 404 unknown
    command, 501 unsupported...), text and optional body."""

    status_code: int
    status_text: str
    body: ControlParameters | None = None

    def encode(self) -> bytes:
        parts = [
            tlv.encode_nonneg_tlv(tlv.STATUS_CODE, self.status_code),
            tlv.encode_tlv(tlv.STATUS_TEXT, self.status_text.encode("utf-8")),
        ]
        if self.body is not None:
            parts.append(self.body.encode())
        return tlv.encode_tlv(tlv.CONTROL_RESPONSE, b"".join(parts))


def decode_control_response(buf: bytes) -> ControlResponse:
    buf = bytes(buf)
    tlv_type, start, end = tlv.read_tlv(buf, 0, len(buf))
    if tlv_type != tlv.CONTROL_RESPONSE or end != len(buf):
        raise DecodeError("not a ControlResponse element")
    code: int | None = None
    text = ""
    body: ControlParameters | None = None
    for inner_type, value_start, value_end in tlv.iter_tlvs(buf, start, end):
        if inner_type == tlv.STATUS_CODE:
            code = tlv.decode_nonneg_int(buf, value_start, value_end)
        elif inner_type == tlv.STATUS_TEXT:
            text = buf[value_start:value_end].decode("utf-8", errors="replace")
        elif inner_type == tlv.CONTROL_PARAMETERS:
            body = decode_control_parameters_value(buf, value_start, value_end)
        elif tlv.is_critical(inner_type):
            raise DecodeError(f"unrecognized critical element {inner_type} in ControlResponse")
    if code is None:
        raise DecodeError("ControlResponse without StatusCode")
    return ControlResponse(code, text, body)
