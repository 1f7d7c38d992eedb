"""engine.ingest.scan: a temp collection folder diffed against a catalog's view of it."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import engine.ingest.scan as scan_module
from engine.base.errors import ImageReadError, ProjectError
from engine.base.progress import Cancelled, CancelToken
from engine.ingest.scan import FileEntry, ScanResult, scan_folder


def _write(root: Path, rel: str, data: bytes = b"pixels") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _known(result: ScanResult) -> dict[str, tuple[int, float, str | None]]:
    """What the catalog would hold after storing this scan."""
    return {e.path: (e.size, e.mtime, e.sha256) for e in result.new + result.changed + result.touched}


@pytest.fixture
def collection(tmp_path) -> Path:
    root = tmp_path / "photos"
    _write(root, "b.jpg", b"bee")
    _write(root, "a.jpg", b"ay")
    _write(root, "trip/day2/z.PNG", b"zed")  # suffixes match in any case
    _write(root, "trip/day1/c.tiff", b"sea")
    _write(root, "trip/A.webp", b"capital")
    _write(root, "trip/scan.BMP", b"bmp")
    _write(root, "notes.txt", b"not an image")
    _write(root, "anim.gif", b"unsupported suffix")
    _write(root, "raw.jpg.xmp", b"sidecar")
    _write(root, ".hidden.jpg", b"hidden file")
    _write(root, ".thumbnails/t.jpg", b"hidden folder")
    _write(root, "trip/.cache/deep.png", b"hidden folder, deeper")
    return root


EXPECTED_PATHS = ["a.jpg", "b.jpg", "trip/A.webp", "trip/day1/c.tiff", "trip/day2/z.PNG", "trip/scan.BMP"]


def test_first_scan_lists_supported_visible_files_as_new_in_sorted_order(collection):
    result = scan_folder(collection, {})

    assert [e.path for e in result.new] == EXPECTED_PATHS == sorted(EXPECTED_PATHS)
    assert result.changed == result.removed == result.unchanged == result.touched == []
    entry = result.new[0]
    stat = (collection / "a.jpg").stat()
    assert entry == FileEntry("a.jpg", stat.st_size, stat.st_mtime, hashlib.sha256(b"ay").hexdigest())


def test_rescan_of_an_untouched_folder_reads_no_file(collection, monkeypatch):
    known = _known(scan_folder(collection, {}))

    def no_hashing(path):
        raise AssertionError(f"{path} was hashed although its size and mtime are unchanged")

    monkeypatch.setattr(scan_module, "file_sha256", no_hashing)
    result = scan_folder(collection, known)

    assert result.unchanged == EXPECTED_PATHS
    assert result.new == result.changed == result.removed == result.touched == []
    assert not result.has_changes


def test_new_changed_removed_unchanged_and_touched(collection):
    known = _known(scan_folder(collection, {}))
    _write(collection, "a.jpg", b"ay, edited")  # other bytes
    (collection / "b.jpg").unlink()
    _write(collection, "trip/day3/new.jpeg", b"fresh")
    touched = collection / "trip/day1/c.tiff"  # same bytes, new date (copied back from a backup)
    os.utime(touched, (1_000_000_000, 1_000_000_000))

    result = scan_folder(collection, known)

    assert [e.path for e in result.new] == ["trip/day3/new.jpeg"]
    assert [e.path for e in result.changed] == ["a.jpg"]
    assert result.changed[0].sha256 == hashlib.sha256(b"ay, edited").hexdigest()
    assert result.changed[0].size == len(b"ay, edited")
    assert result.removed == ["b.jpg"]
    assert result.unchanged == ["trip/A.webp", "trip/day1/c.tiff", "trip/day2/z.PNG", "trip/scan.BMP"]
    assert result.touched == [
        FileEntry("trip/day1/c.tiff", 3, 1_000_000_000.0, hashlib.sha256(b"sea").hexdigest())
    ]
    assert result.summary() == "1 new, 1 changed, 1 removed, 4 unchanged (1 with new dates, same content)"


def test_changed_date_with_no_known_hash_counts_as_changed(collection):
    known = {path: (size, mtime, None) for path, (size, mtime, _) in _known(scan_folder(collection, {})).items()}
    os.utime(collection / "a.jpg", (1_000_000_000, 1_000_000_000))

    result = scan_folder(collection, known)

    assert [e.path for e in result.changed] == ["a.jpg"]


def test_unreadable_file_is_still_listed_for_extraction_to_report(collection, monkeypatch):
    real = scan_module.file_sha256

    def locked(path):
        if Path(path).name == "b.jpg":
            raise ImageReadError(path, "permission denied")
        return real(path)

    monkeypatch.setattr(scan_module, "file_sha256", locked)
    result = scan_folder(collection, {})

    assert [e.path for e in result.new] == EXPECTED_PATHS
    assert next(e for e in result.new if e.path == "b.jpg").sha256 is None


def test_unreadable_folder_removes_nothing_under_it(collection, monkeypatch):
    known = _known(scan_folder(collection, {}))
    real = os.scandir

    def locked(path):
        if Path(path).name == "day1":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(scan_module.os, "scandir", locked)
    result = scan_folder(collection, known)

    assert result.unreadable_dirs == ["trip/day1"]
    assert result.removed == []
    assert "trip/day1/c.tiff" not in result.unchanged
    assert result.summary().endswith("; 1 folder could not be read")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks on this system")
def test_symlinked_files_are_followed_and_symlinked_folders_are_not(collection, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    target = _write(elsewhere, "linked.jpg", b"linked bytes")
    try:
        os.symlink(target, collection / "link.jpg")
        os.symlink(elsewhere, collection / "linked_folder", target_is_directory=True)
        os.symlink(tmp_path / "gone.jpg", collection / "dangling.jpg")
    except OSError as exc:  # e.g. Windows without the symlink privilege
        pytest.skip(f"cannot create symlinks: {exc}")

    result = scan_folder(collection, {})

    paths = [e.path for e in result.new]
    assert "link.jpg" in paths and not any(p.startswith("linked_folder") for p in paths)
    assert "dangling.jpg" not in paths
    link = next(e for e in result.new if e.path == "link.jpg")
    assert link.size == len(b"linked bytes") and link.sha256 == hashlib.sha256(b"linked bytes").hexdigest()


def test_missing_collection_folder_is_an_error_not_a_mass_removal(tmp_path):
    with pytest.raises(ProjectError, match="does not exist"):
        scan_folder(tmp_path / "unplugged_drive", {"a.jpg": (1, 1.0, None)})


def test_progress_ends_at_the_file_count(collection):
    calls = []
    scan_folder(collection, {}, progress=lambda done, total, stage: calls.append((done, total, stage)))

    assert calls[0] == (0, len(EXPECTED_PATHS), "scan")
    assert calls[-1] == (len(EXPECTED_PATHS), len(EXPECTED_PATHS), "scan")


def test_cancel_stops_the_scan(collection):
    token = CancelToken()
    token.cancel()

    with pytest.raises(Cancelled):
        scan_folder(collection, {}, cancel=token)


def test_empty_folder(tmp_path):
    result = scan_folder(tmp_path, {})
    assert result == ScanResult(new=[], changed=[], removed=[], unchanged=[])
    assert result.summary() == "0 new, 0 changed, 0 removed, 0 unchanged"
