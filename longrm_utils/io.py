"""Reading and writing the repo's files: JSON Lines and JSON, with errors that name file and line.

Every reader here reports the *physical* line of a bad line (blank lines count), and every writer
writes to a temporary file first and renames it, so a failed write never leaves half a file behind.
The one exception is :func:`append_jsonl`, which the resumable judge uses line by line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator


class InputError(ValueError):
    """Bad input a user can fix. The message is one line naming file, line, record and field."""

    def __init__(self, msg: str, *, file: str | os.PathLike | None = None, line: int | None = None,
                 rec_id: Any = None, field: str | None = None):
        where = [" ".join(x for x in (None if file is None else str(file),
                                        None if line is None else f"line {line}") if x)]
        where = [w for w in where if w]
        if rec_id is not None:
            where.append(f"record {rec_id!r}")
        if field is not None:
            where.append(f"field {field!r}")
        self.file, self.line, self.rec_id, self.field = file, line, rec_id, field
        self.reason = msg
        super().__init__(": ".join([", ".join(where), msg]) if where else msg)


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """Yield ``(physical line number, parsed value)`` for each non-blank line."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            for n, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    yield n, json.loads(raw)
                except json.JSONDecodeError as e:
                    raise InputError(f"not valid JSON ({e.msg} at column {e.colno})", file=path, line=n) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte {e.start} of a line cannot be decoded)", file=path) from None
    except FileNotFoundError:
        raise InputError("no such file", file=path) from None


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """All non-blank lines of a JSON Lines file, parsed."""
    return [v for _, v in iter_jsonl(path)]


def unique_rows(rows: Iterable[tuple[int, Any]], key, *, file: str | os.PathLike, field: str,
                what: str = "key") -> list[Any]:
    """The values of ``(line, value)`` rows, refusing a repeated ``key(value)`` with both line numbers."""
    out, seen = [], {}
    for n, v in rows:
        k = key(v)
        if k in seen:
            raise InputError(f"duplicate {what} {k}; first seen on line {seen[k]}", file=file, line=n,
                             rec_id=v.get("id") if isinstance(v, dict) else None, field=field)
        seen[k] = n
        out.append(v)
    return out


def _atomic_write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def dumps_line(obj: Any) -> str:
    """One JSONL line, written the same way everywhere (so reruns are byte-identical)."""
    return json.dumps(obj, ensure_ascii=False) + "\n"


def write_jsonl(rows: Iterable[Any], path: str | os.PathLike) -> Path:
    return _atomic_write(Path(path), "".join(dumps_line(r) for r in rows))


def append_jsonl(row: Any, path: str | os.PathLike) -> None:
    """Append one line and flush it, so that a killed run can resume from what is on disk."""
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(dumps_line(row))
        fh.flush()


def write_text(path: str | os.PathLike, text: str) -> Path:
    return _atomic_write(Path(path), text)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return _atomic_write(Path(path), json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no such file", file=path) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", file=path) from None
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e.msg} at column {e.colno})", file=path, line=e.lineno) from None
