"""The worker's data folder must take writes before the worker starts: a full or read-only
disk there otherwise surfaces later as a traceback deep inside Faust."""

from __future__ import annotations

import os
from pathlib import Path

from streams.exceptions import DataDirError

__all__ = ["check_writable"]

# Why 64 KiB: more than Faust writes there with the memory store (empty folders and small
# offset files); a disk that cannot take this much is full for the worker's purposes.
_PROBE_BYTES = 64 * 1024


def check_writable(data_dir: Path) -> None:
    """Create ``data_dir`` and write (then remove) a probe file; raise :class:`DataDirError`
    naming the folder, the reason and what to do if that fails."""
    probe = data_dir / f".write-probe-{os.getpid()}"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as out:
            out.write(b"\0" * _PROBE_BYTES)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise DataDirError(
            f"the data folder {data_dir} (STORYWATCH_DATA_DIR) cannot be written: "
            f"{exc.strerror or exc}; free space there or point STORYWATCH_DATA_DIR at a "
            "writable folder"
        ) from exc
    finally:
        probe.unlink(missing_ok=True)
