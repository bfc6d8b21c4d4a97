"""RecordIO-protobuf decoding: our codec against the ``protobuf`` package's C (upb) decoder.

    .venv/bin/python bench/recordio_decode.py [--records 20000] [--width 20] [--repeats 7]

The body: ``--records`` dense records of ``--width`` float32 features each, with a float32
label, as the SageMaker SDK and SageMaker Spark write them (``recordio.from_matrix``). Decoded
into a float32 matrix (and the labels) by:

* ``recordio.to_matrix`` as the server runs it (the uniform-layout fast path applies);
* ``recordio.to_matrix`` forced onto the general record-by-record decoder;
* the protobuf package (``google.protobuf``, upb backend): ``Record.ParseFromString`` per
  record, with the ``aialgs.data.Record`` message built from a descriptor (no protoc), and the
  values copied into one float32 matrix, the least any caller of it has to do.

All three results are checked byte for byte against the matrix the body was made from.
Prints the best of ``--repeats`` runs each, and the load average. CI does not run it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal import api_implementation
from mlstack_containers import recordio


def record_class() -> type:
    """``aialgs.data.Record`` (SageMaker's record.proto), the fields this benchmark reads."""
    f = descriptor_pb2.FileDescriptorProto(name="record.proto", package="aialgs.data")
    F = descriptor_pb2.FieldDescriptorProto
    tensor = f.message_type.add(name="Float32Tensor")
    tensor.field.add(name="values", number=1, type=F.TYPE_FLOAT, label=F.LABEL_REPEATED,
                     options=descriptor_pb2.FieldOptions(packed=True))  # fmt: skip
    for name, number in (("keys", 2), ("shape", 3)):
        tensor.field.add(name=name, number=number, type=F.TYPE_UINT64, label=F.LABEL_REPEATED,
                         options=descriptor_pb2.FieldOptions(packed=True))  # fmt: skip
    value = f.message_type.add(name="Value")
    value.field.add(name="float32_tensor", number=2, type=F.TYPE_MESSAGE,
                    type_name=".aialgs.data.Float32Tensor", label=F.LABEL_OPTIONAL)  # fmt: skip
    record = f.message_type.add(name="Record")
    for name, number in (("features", 1), ("label", 2)):
        entry = record.nested_type.add(name=f"{name.capitalize()}Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
        entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE,
                        type_name=".aialgs.data.Value", label=F.LABEL_OPTIONAL)  # fmt: skip
        record.field.add(name=name, number=number, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                         type_name=f".aialgs.data.Record.{name.capitalize()}Entry")  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))


def decode_upb(body: bytes, width: int, Record: type) -> tuple[np.ndarray, np.ndarray]:
    payloads = list(recordio.read_records(body))
    features = np.empty((len(payloads), width), np.float32)
    labels = np.empty(len(payloads), np.float32)
    msg = Record()
    for i, payload in enumerate(payloads):
        msg.ParseFromString(payload)
        features[i] = msg.features["values"].float32_tensor.values
        labels[i] = msg.label["values"].float32_tensor.values[0]
    return features, labels


def decode_general(body: bytes, width: int) -> tuple[np.ndarray, np.ndarray | None]:
    original = recordio._uniform_dense
    recordio._uniform_dense = lambda data, n: None  # type: ignore[assignment]
    try:
        return recordio.to_matrix(body, num_features=width)  # type: ignore[return-value]
    finally:
        recordio._uniform_dense = original


def best(fn, repeats: int) -> tuple[float, object]:
    result = fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--width", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((args.records, args.width)).astype(np.float32)
    labels = rng.random(args.records).astype(np.float32)
    body = recordio.from_matrix(matrix, labels)
    Record = record_class()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    runs = {
        "recordio.to_matrix (as served)": lambda: recordio.to_matrix(body, args.width),
        "recordio.to_matrix, general decoder": lambda: decode_general(body, args.width),
        f"protobuf {api_implementation.Type()} ParseFromString": lambda: decode_upb(
            body, args.width, Record
        ),
    }
    print(f"{args.records:,} records x {args.width} float32 + label, {len(body):,} bytes; "
          f"load average before: {load}")  # fmt: skip
    print()
    print("| decoder | best of runs (ms) | records/s | identical to the source matrix |")
    print("| --- | --- | --- | --- |")
    figures = {}
    for name, fn in runs.items():
        seconds, (features, got_labels) = best(fn, args.repeats)  # type: ignore[misc]
        same = features.tobytes() == matrix.tobytes() and got_labels.tobytes() == labels.tobytes()
        figures[name] = seconds
        print(f"| {name} | {seconds * 1000:.1f} | {args.records / seconds:,.0f} | {same} |")
    served, _, upb = figures.values()
    print()
    print(f"as served / upb: {upb / served:.1f}x faster; load average after: "
          f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}")  # fmt: skip


if __name__ == "__main__":
    main()
