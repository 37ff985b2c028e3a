"""addon/core/files.py: files appear complete or not at all; content digests."""
import hashlib
import os

import numpy as np
import pytest

from addon.core import files


def test_atomic_path_replaces_the_target_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "volume.npz"
    target.write_bytes(b"old")
    with files.atomic_path(target) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".tmp.npz")  # same folder, same extension
        assert os.path.basename(tmp).startswith(".volume.npz.")  # hidden from globs of the real files
        np.savez_compressed(tmp, a=np.arange(3))  # numpy keeps a name that ends in .npz as it is
        assert target.read_bytes() == b"old"  # not yet
    with np.load(target) as npz:
        assert npz["a"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["volume.npz"]


def test_a_failing_block_leaves_the_target_as_it_was_and_no_temporary_file(tmp_path):
    target = tmp_path / "frame_0001.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with files.atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame_0001.png"]
    with files.atomic_path(tmp_path / "never.bin"):
        pass  # nothing written: nothing appears
    assert not (tmp_path / "never.bin").exists()


def test_temporary_names_differ_between_writers(tmp_path):
    names = {files.temporary_path(tmp_path / "model.pt") for _ in range(50)}
    assert len(names) == 50 and all(f".{os.getpid()}-" in n and n.endswith(".tmp.pt") for n in names)


def test_write_bytes_atomic_and_file_digest(tmp_path):
    path = tmp_path / "sub.bin"
    data = os.urandom(3 * files.DIGEST_CHUNK + 17)  # several read chunks
    files.write_bytes_atomic(path, data)
    assert path.read_bytes() == data
    assert files.file_digest(path) == hashlib.sha256(data).hexdigest()[:12]
    assert files.file_digest(str(path), length=64) == hashlib.sha256(data).hexdigest()
