"""Request bodies to columns, predictions to response bodies: plain JSON and KServe V2.

This module is the one place where request bytes become Python values: every body goes
through :func:`decode_json` and then :func:`parse_v2` or :func:`columns_from_plain`, which
check each field's type and raise :class:`ProtocolError` (HTTP 400) naming the field. What
they return holds only JSON scalars in its data, which the signature check then judges
value by value (HTTP 422). Responses go through :func:`encode_json`, which always writes
valid JSON.

The V2 (Open Inference Protocol) REST shapes follow
https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/ and the
binary tensor data extension of Triton
(https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md),
so that existing V2 clients, tritonclient included, work unchanged.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ._signature import MISSING, HugeInteger, Kind, Signature, is_text, show

# Little-endian numpy dtypes of the fixed-size V2 datatypes (binary data is little-endian).
_V2_DTYPES = {"BOOL": "u1", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
              "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2",
              "FP32": "<f4", "FP64": "<f8"}
_V2_TYPES = frozenset(_V2_DTYPES) | {"BYTES"}
_KIND_TO_V2: dict[Kind, str] = {"float": "FP64", "int": "INT64", "bool": "BOOL",
                                "string": "BYTES", "datetime": "BYTES", "any": "BYTES"}
# Arrow type names (as signatures hold them) that have a V2 datatype of their own.
_ARROW_TO_V2 = {"double": "FP64", "float": "FP32", "halffloat": "FP16", "bool": "BOOL",
                **{f"{u}int{b}": f"{u.upper()}INT{b}" for u in ("", "u") for b in (8, 16, 32, 64)}}
# Header of the binary tensor data extension: the length of the JSON part of a body.
HEADER_LENGTH = "Inference-Header-Content-Length"


class ProtocolError(InvalidInputError):
    """The body is not a request of the protocol at all (an HTTP 400, not a 422)."""


def _huge_integer(literal: str) -> int | HugeInteger:
    try:
        return int(literal)
    except ValueError:  # longer than Python's int/str conversion limit
        return HugeInteger(len(literal.lstrip("-")))


def decode_json(data: bytes, what: str = "the body") -> Any:
    """Parse a JSON request body; any way it can fail is a :class:`ProtocolError`.

    ``NaN`` and ``Infinity`` are parsed as floats (the signature check treats NaN as null
    and infinities as invalid); integers past Python's digit limit become
    :class:`HugeInteger`, which no field accepts.
    """
    try:
        try:
            return json.loads(data)
        except ValueError as exc:
            if isinstance(exc, json.JSONDecodeError) or "integer string" not in str(exc):
                raise
            # Only bodies holding such an integer pay for a Python call per integer.
            return json.loads(data, parse_int=_huge_integer)
    except RecursionError:
        raise ProtocolError(f"{what} is nested too deeply to be a request") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProtocolError(f"{what} is not valid JSON: {exc}") from None


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def encode_json(content: Any) -> bytes:
    r"""Valid JSON whatever ``content`` holds: NaN and infinities as null, text ASCII-escaped.

    Escaping keeps strings that are not valid Unicode (a column named ``"\ud800"``
    quoted back in an error) encodable.
    """
    try:
        text = json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except ValueError:  # a non-finite float somewhere: rare, so only then the walk
        text = json.dumps(_finite(content), ensure_ascii=True, separators=(",", ":"))
    return text.encode("ascii")


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ProtocolError(f"{what} must be a JSON object, got {_json_type(body)}")
    return body


def _json_type(value: Any) -> str:
    names = {type(None): "null", bool: "true/false", int: "a number", float: "a number",
             str: "a string", list: "a list", dict: "an object", HugeInteger: "a number"}
    return names.get(type(value), type(value).__name__)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not is_text(value):
        raise ProtocolError(f"{what} must be a string of valid Unicode text, "
                            f"got {show(value)}")
    return value


def _parameters(holder: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = holder.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ProtocolError(f"{what} 'parameters' must be a JSON object, "
                            f"got {_json_type(parameters)}")
    return parameters


def _flag(parameters: dict[str, Any], key: str, what: str) -> bool:
    value = parameters.get(key, False)
    if type(value) is not bool:
        raise ProtocolError(f"{what} parameter {key!r} must be true or false, got {show(value)}")
    return value


def columns_from_plain(body: Any) -> dict[str, list[Any]]:
    """``{"records": [{...}, ...]}`` or ``{"columns": {"name": [...]}}`` as columns."""
    body = _object(body, "the /predict body")
    if "records" in body:
        records = body["records"]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ProtocolError("'records' must be a list of objects, one per row")
        names = dict.fromkeys(name for record in records for name in record)
        return {name: [record.get(name, MISSING) for record in records] for name in names}
    if "columns" in body:
        columns = body["columns"]
        if not isinstance(columns, dict) or not all(isinstance(v, list)
                                                    for v in columns.values()):
            raise ProtocolError("'columns' must be an object of lists, one per column")
        return columns
    raise ProtocolError(
        'the /predict body needs "records" (a list of row objects) or "columns" '
        '(an object of column lists)'
    )


@dataclass(frozen=True)
class Tensor:
    """One input tensor of a V2 request, its data flattened in row-major order."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


@dataclass(frozen=True)
class V2Request:
    """A checked V2 inference request."""

    id: str | None
    inputs: list[Tensor]
    # Requested output -> its binary_data parameter (None: not said, the request's applies).
    outputs: dict[str, bool | None]
    binary_outputs: bool  # parameters.binary_data_output: outputs as binary data by default

    def binary(self, output: str) -> bool:
        """Whether ``output`` is answered as binary data."""
        own = self.outputs.get(output)
        return self.binary_outputs if own is None else own


def _flatten(data: Any, shape: list[int], name: str) -> list[Any]:
    """``data`` flat, as the spec allows it, or nested no deeper than ``shape``."""
    if not isinstance(data, list):
        raise ProtocolError(f"input {name!r} needs a 'data' list, got {_json_type(data)}")
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    stack = [(data, 0, 1)]
    while stack:  # no recursion: data may be nested nearly as deep as JSON allows
        items, start, depth = stack.pop()
        for position in range(start, len(items)):
            item = items[position]
            if isinstance(item, list):
                if depth >= len(shape):
                    raise ProtocolError(f"input {name!r} has data nested deeper than its "
                                        f"shape {shape}")
                stack.append((items, position + 1, depth))
                stack.append((item, 0, depth + 1))
                break
            flat.append(item)
    return flat


def _from_binary(raw: memoryview, datatype: str, count: int, name: str) -> list[Any]:
    """The values of a tensor sent as binary data, as Python scalars."""
    if datatype != "BYTES":
        dtype = np.dtype(_V2_DTYPES[datatype])
        if len(raw) != count * dtype.itemsize:
            raise ProtocolError(f"input {name!r} has {len(raw)} bytes of binary data; its "
                                f"shape and {datatype} need {count * dtype.itemsize}")
        array = np.frombuffer(raw, dtype=dtype)
        return (array != 0 if datatype == "BOOL" else array).tolist()
    # BYTES: each element is a 4-byte little-endian length, then that many bytes.
    values, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise ProtocolError(f"input {name!r} has a truncated BYTES element length")
        (size,) = struct.unpack_from("<I", raw, offset)
        element = bytes(raw[offset + 4:offset + 4 + size])
        if len(element) != size:
            raise ProtocolError(f"input {name!r} has a BYTES element cut short")
        try:
            values.append(element.decode("utf-8"))
        except UnicodeDecodeError:
            raise ProtocolError(f"input {name!r} element {len(values)} is not UTF-8 text"
                                ) from None
        offset += 4 + size
    if len(values) != count:
        raise ProtocolError(f"input {name!r} has {len(values)} BYTES elements; its shape "
                            f"needs {count}")
    return values


def split_binary(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON part and the binary part of a body (binary tensor data extension)."""
    if header_length is None:
        return body, memoryview(b"")
    if not header_length.isdigit() or int(header_length) > len(body):
        raise ProtocolError(f"the {HEADER_LENGTH} header must be the length of the JSON "
                            f"part of the body (at most {len(body)}), got {header_length!r}")
    length = int(header_length)
    return body[:length], memoryview(body)[length:]


def parse_v2(body: Any, binary: memoryview, available: list[str]) -> V2Request:
    """Check every field of a V2 inference request; ``available`` are the model's outputs."""
    body = _object(body, "the V2 inference request")
    given_id = body.get("id")
    if given_id is not None:
        _text(given_id, "'id'")
    binary_outputs = _flag(_parameters(body, "the request's"), "binary_data_output",
                           "the request's")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("the V2 inference request needs a non-empty 'inputs' list")
    tensors: list[Tensor] = []
    offset = 0
    for position, tensor in enumerate(inputs):
        tensor = _object(tensor, f"inputs[{position}]")
        name = _text(tensor.get("name"), f"inputs[{position}] 'name'")
        if any(t.name == name for t in tensors):
            raise ProtocolError(f"input {name!r} is given twice; send each tensor once")
        shape, datatype = tensor.get("shape"), tensor.get("datatype")
        if (not isinstance(shape, list) or not shape
                or not all(type(d) is int and d >= 0 for d in shape)):
            raise ProtocolError(f"input {name!r} needs a 'shape' list of non-negative integers")
        if not isinstance(datatype, str) or datatype not in _V2_TYPES:
            raise ProtocolError(f"input {name!r} has datatype {show(datatype)}; expected one "
                                f"of {', '.join(sorted(_V2_TYPES))}")
        count = math.prod(shape)
        size = _parameters(tensor, f"input {name!r}").get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise ProtocolError(
                    f"input {name!r} has binary_data_size {show(size)}; the body has "
                    f"{len(binary) - offset} bytes of binary data left for it")
            flat = _from_binary(binary[offset:offset + size], datatype, count, name)
            offset += size
        else:
            flat = _flatten(tensor.get("data"), shape, name)
            if len(flat) != count:
                raise ProtocolError(f"input {name!r} has shape {shape} but {len(flat)} values")
        tensors.append(Tensor(name, shape, datatype, flat))
    if offset != len(binary):
        raise ProtocolError(f"the body has {len(binary) - offset} bytes of binary data that "
                            "no input's binary_data_size accounts for")
    return V2Request(given_id, tensors, _requested_outputs(body, available), binary_outputs)


def _requested_outputs(body: dict[str, Any], available: list[str]
                       ) -> dict[str, bool | None]:
    outputs = body.get("outputs", [])
    if not isinstance(outputs, list):
        raise ProtocolError(f"'outputs' must be a list of objects, got {_json_type(outputs)}")
    wanted: dict[str, bool | None] = {}
    for position, output in enumerate(outputs):
        output = _object(output, f"outputs[{position}]")
        name = _text(output.get("name"), f"outputs[{position}] 'name'")
        if name in wanted:
            raise ProtocolError(f"output {name!r} is asked for twice")
        if name not in available:
            raise ProtocolError(f"the model has no output {name!r}; it has "
                                f"{', '.join(available)}")
        parameters = _parameters(output, f"output {name!r}")
        wanted[name] = (_flag(parameters, "binary_data", f"output {name!r}")
                        if "binary_data" in parameters else None)
    return wanted


def columns_from_v2(request: V2Request, signature: Signature) -> dict[str, list[Any]]:
    """The columns of a V2 inference request.

    Takes one 2-D tensor ``[rows, columns]`` in training column order, or one tensor per
    column named as in training (shape ``[rows]`` or ``[rows, 1]``).
    """
    names = signature.names
    tensors = request.inputs
    tensor = tensors[0]
    if len(tensors) == 1 and len(tensor.shape) == 2 and tensor.name not in signature.by_name:
        width = tensor.shape[1]
        if width != len(names):
            raise ProtocolError(
                f"input {tensor.name!r} has {width} columns; the model takes {len(names)} "
                f"({', '.join(names)}), in this order"
            )
        return {column: tensor.data[j::width] for j, column in enumerate(names)}
    columns = {}
    for tensor in tensors:
        shape = tensor.shape
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise ProtocolError(
                f"input {tensor.name!r} has shape {shape}; send one tensor per column with "
                f"shape [rows] or [rows, 1], or a single [rows, {len(names)}] tensor"
            )
        columns[tensor.name] = tensor.data
    return columns


def v2_datatype(array: np.ndarray) -> str:
    """The V2 datatype of a result array."""
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return f"{'U' if kind == 'u' else ''}INT{array.dtype.itemsize * 8}"
    if kind == "f" and array.dtype.itemsize in (2, 4, 8):
        return f"FP{array.dtype.itemsize * 8}"
    return "BYTES"


def v2_tensor(name: str, array: np.ndarray, *, binary: bool = False
              ) -> tuple[dict[str, Any], bytes]:
    """A V2 output tensor of ``array`` and its binary data (empty unless ``binary``).

    Data is flattened in row-major order; binary data is little-endian, BYTES elements
    each prefixed with their 4-byte length.
    """
    datatype = v2_datatype(array)
    tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    flat = np.ravel(array)
    if not binary:
        tensor["data"] = (flat.tolist() if datatype != "BYTES"
                          else [str(x) for x in flat])
        return tensor, b""
    if datatype == "BYTES":
        encoded = [str(x).encode("utf-8", "surrogatepass") for x in flat]
        raw = b"".join(struct.pack("<I", len(e)) + e for e in encoded)
    else:
        raw = flat.astype(_V2_DTYPES[datatype], copy=False).tobytes()
    tensor["parameters"] = {"binary_data_size": len(raw)}
    return tensor, raw


def v2_model_metadata(name: str, version: str, platform: str, signature: Signature
                      ) -> dict[str, Any]:
    """The V2 model metadata body: inputs as one tensor per column, outputs as seen."""
    return {
        "name": name,
        "versions": [version],
        "platform": platform,
        "inputs": [{"name": c.name, "datatype": _ARROW_TO_V2.get(c.dtype, _KIND_TO_V2[c.kind]),
                    "shape": [-1]} for c in signature.columns],
        "outputs": [{"name": o["name"], "datatype": _ARROW_TO_V2.get(o["dtype"], "BYTES"),
                     "shape": o.get("shape", [-1])} for o in signature.outputs],
    }
