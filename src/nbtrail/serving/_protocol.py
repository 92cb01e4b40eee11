"""Request bodies to columns, predictions to response bodies: plain JSON and KServe V2.

The V2 (Open Inference Protocol) REST shapes follow
https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/ so that
existing V2 clients work unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ._signature import MISSING, Kind, Signature

_V2_TYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
             "FP16", "FP32", "FP64", "BYTES"}
_KIND_TO_V2: dict[Kind, str] = {"float": "FP64", "int": "INT64", "bool": "BOOL",
                                "string": "BYTES", "datetime": "BYTES", "any": "BYTES"}
# Arrow type names (as signatures hold them) that have a V2 datatype of their own.
_ARROW_TO_V2 = {"double": "FP64", "float": "FP32", "halffloat": "FP16", "bool": "BOOL",
                **{f"{u}int{b}": f"{u.upper()}INT{b}" for u in ("", "u") for b in (8, 16, 32, 64)}}


class ProtocolError(InvalidInputError):
    """The body is not a request of the protocol at all (an HTTP 400, not a 422)."""


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ProtocolError(f"{what} must be a JSON object, got {type(body).__name__}")
    return body


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


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise ProtocolError("a tensor's 'data' must be a list")
    if any(isinstance(item, list) for item in data):
        return [x for item in data for x in (_flatten(item) if isinstance(item, list)
                                             else [item])]
    return data


def columns_from_v2(body: Any, signature: Signature) -> tuple[dict[str, list[Any]], Any]:
    """The columns of a V2 inference request, and its ``id``.

    Takes one 2-D tensor ``[rows, columns]`` in training column order, or one tensor per
    column named as in training (shape ``[rows]`` or ``[rows, 1]``).
    """
    body = _object(body, "the V2 inference request")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("the V2 inference request needs a non-empty 'inputs' list")
    tensors = []
    for position, tensor in enumerate(inputs):
        tensor = _object(tensor, f"inputs[{position}]")
        name, shape = tensor.get("name"), tensor.get("shape")
        datatype, data = tensor.get("datatype"), tensor.get("data")
        if not isinstance(name, str):
            raise ProtocolError(f"inputs[{position}] needs a 'name' string")
        if (not isinstance(shape, list) or not shape
                or not all(type(d) is int and d >= 0 for d in shape)):
            raise ProtocolError(f"input {name!r} needs a 'shape' list of non-negative integers")
        if datatype not in _V2_TYPES:
            raise ProtocolError(f"input {name!r} has datatype {datatype!r}; expected one of "
                                f"{', '.join(sorted(_V2_TYPES))}")
        flat = _flatten(data)
        if len(flat) != math.prod(shape):
            raise ProtocolError(f"input {name!r} has shape {shape} but {len(flat)} values")
        tensors.append((name, shape, flat))

    names = signature.names
    if len(tensors) == 1 and len(tensors[0][1]) == 2 and tensors[0][0] not in signature.by_name:
        name, (_, width), flat = tensors[0]
        if width != len(names):
            raise ProtocolError(
                f"input {name!r} has {width} columns; the model takes {len(names)} "
                f"({', '.join(names)}), in this order"
            )
        return {column: flat[j::width] for j, column in enumerate(names)}, body.get("id")
    columns = {}
    for name, shape, flat in tensors:
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise ProtocolError(
                f"input {name!r} has shape {shape}; send one tensor per column with shape "
                f"[rows] or [rows, 1], or a single [rows, {len(names)}] tensor"
            )
        columns[name] = flat
    return columns, body.get("id")


def v2_datatype(array: np.ndarray) -> str:
    """The V2 datatype of a result array."""
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return f"{'U' if kind == 'u' else ''}INT{array.dtype.itemsize * 8}"
    if kind == "f":
        return f"FP{array.dtype.itemsize * 8}"
    return "BYTES"


def v2_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    """A V2 output tensor of ``array`` (data flattened in row-major order)."""
    return {"name": name, "datatype": v2_datatype(array), "shape": list(array.shape),
            "data": np.ravel(array).tolist() if array.dtype.kind != "O"
            else [str(x) for x in np.ravel(array)]}


def v2_model_metadata(name: str, version: str, signature: Signature) -> dict[str, Any]:
    """The V2 model metadata body: inputs as one tensor per column, outputs as seen."""
    return {
        "name": name,
        "versions": [version],
        "platform": "nbtrail-sklearn",
        "inputs": [{"name": c.name, "datatype": _ARROW_TO_V2.get(c.dtype, _KIND_TO_V2[c.kind]),
                    "shape": [-1]} for c in signature.columns],
        "outputs": [{"name": o["name"], "datatype": _ARROW_TO_V2.get(o["dtype"], "BYTES"),
                     "shape": o.get("shape", [-1])} for o in signature.outputs],
    }
