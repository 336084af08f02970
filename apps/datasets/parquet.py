"""Export rows as Parquet: one fixed Arrow schema per format, written in row groups at constant memory.

Fixed-shape values are Arrow types (trl's `metadata` is a struct, sharegpt's turns a list of structs), so
`datasets.load_dataset("parquet", ...)` and pyarrow give back the same dicts the JSON Lines export has.
Free-form JSON (openai's `input.messages` and `input.tools`: JSON schemas and messages whose keys vary) is
stored as canonical JSON text in Arrow's `arrow.json` extension type (Parquet's JSON logical type): `datasets`
reads such a column as its `Json()` feature and decodes it to the same lists and dicts; pyarrow, pandas or
DuckDB see the JSON text (`read_rows` below decodes it). One caveat of `datasets` there, not of the file:
it decodes JSON with pandas' ujson, which may round the last digit of a float inside those two columns
(the file holds the exact text; `read_rows` and `json.loads` read it exactly).

No Django here: rows in, a file out.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from itool_web.batching import batched
from workers.progress import Progress

ROW_GROUP = 5000  # rows per row group: one batch held in memory at a time (~10 MB of trl rows)
COMPRESSION = "zstd"  # read by pyarrow, datasets, pandas, polars, DuckDB and Spark 3+

_TURN = pa.struct([("from", pa.string()), ("value", pa.string())])
_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

SCHEMAS = {
    "trl": pa.schema(
        [
            ("prompt", pa.string()),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            (
                "metadata",
                pa.struct(
                    [  # apps.datasets.rows.row_metadata
                        ("snapshot_id", pa.int64()),
                        ("snapshot_hash", pa.string()),
                        ("ordinal", pa.int64()),
                        ("pair_id", pa.int64()),
                        ("query_id", pa.int64()),
                        ("query_external_id", pa.string()),
                        ("deficiency", pa.string()),
                        ("gap", pa.float64()),
                        ("status", pa.string()),
                        ("chosen_ends", pa.bool_()),
                        ("rejected_ends", pa.bool_()),
                        ("completed", pa.bool_()),
                    ]
                ),
            ),
            # the sampled token ids (apps.datasets.rows.trl_ids); null where the pair has none
            ("prompt_ids", pa.list_(pa.int64())),
            ("chosen_ids", pa.list_(pa.int64())),
            ("rejected_ids", pa.list_(pa.int64())),
        ]
    ),
    "openai": pa.schema(
        [
            ("input", pa.struct([("messages", pa.json_()), ("tools", pa.json_())])),
            ("preferred_output", pa.list_(_MESSAGE)),
            ("non_preferred_output", pa.list_(_MESSAGE)),
        ]
    ),
    "sharegpt": pa.schema(
        [
            ("conversations", pa.list_(_TURN)),
            ("chosen", _TURN),
            ("rejected", _TURN),
            ("tools", pa.string()),  # a JSON string in the JSON Lines rows too (LLaMA-Factory reads it so)
        ]
    ),
}
# (column, field) pairs holding free-form JSON: encoded as JSON text on the way in, decoded by `read_rows`.
JSON_FIELDS = {"trl": (), "openai": (("input", "messages"), ("input", "tools")), "sharegpt": ()}


def _storage(type_: pa.DataType) -> pa.DataType:
    """The type with each `arrow.json` replaced by its storage (a string), which `from_pylist` can fill."""
    if isinstance(type_, pa.BaseExtensionType):
        return type_.storage_type
    if pa.types.is_struct(type_):
        return pa.struct([field.with_type(_storage(field.type)) for field in type_])
    if pa.types.is_list(type_):
        return pa.list_(_storage(type_.value_type))
    return type_


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)  # canonical, as rows.encode_row


@dataclass(frozen=True)
class ParquetFile:
    rows: int
    bytes: int
    sha256: str


def write_parquet(
    rows: Iterable[dict],
    fmt: str,
    path: Path | str,
    *,
    row_group: int | None = None,
    total: int | None = None,
    progress: Progress | None = None,
) -> ParquetFile:
    """Write export rows of `fmt` to `path` in row groups of `row_group` rows (one in memory at a time).

    The file is written beside `path` under a temporary name and renamed into place when complete, so `path`
    is either absent, the previous file, or a whole new one. `progress` gets {"done", "total"} (rows written,
    and `total`: the rows expected) after each row group. Returns the row count, the size and the sha256 of the
    bytes written.
    """
    row_group = row_group or ROW_GROUP
    schema = SCHEMAS[fmt]
    storage = pa.schema([field.with_type(_storage(field.type)) for field in schema])
    json_fields = JSON_FIELDS[fmt]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    count = 0
    try:
        with pq.ParquetWriter(tmp, schema, compression=COMPRESSION) as writer:
            for batch in batched(rows, row_group):
                if json_fields:
                    encoded: dict[int, tuple[object, str]] = {}
                    batch = [_encode_json(row, json_fields, encoded) for row in batch]
                table = pa.Table.from_pylist(batch, schema=storage).cast(schema)
                writer.write_table(table, row_group_size=row_group)
                count += len(batch)
                if progress is not None:
                    progress({"done": count, "total": total})
        digest, size = _sha256(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ParquetFile(rows=count, bytes=size, sha256=digest)


def read_rows(path: Path | str, *, batch_size: int = ROW_GROUP) -> Iterator[dict]:
    """The rows of a file `write_parquet` made, as the JSON Lines export has them (JSON columns decoded)."""
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    fmt = next((f for f, schema in SCHEMAS.items() if schema.names == names), None)
    json_fields = JSON_FIELDS.get(fmt, ())
    for batch in parquet.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            for column, field in json_fields:
                row[column][field] = json.loads(row[column][field])
            yield row


def _encode_json(row: dict, json_fields, encoded: dict[int, tuple[object, str]]) -> dict:
    """The row with its free-form JSON values as text. The rows of one query share those values (the same
    objects), so each is encoded once per batch: `encoded` maps id(value) → (value, text), holding the value
    so that its id stays its own while the batch lives."""
    row = dict(row)
    for column, field in json_fields:
        value = row[column][field]
        found = encoded.get(id(value))
        if found is None:
            found = encoded[id(value)] = (value, _dumps(value))
        row[column] = {**row[column], field: found[1]}
    return row


def _sha256(path: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
