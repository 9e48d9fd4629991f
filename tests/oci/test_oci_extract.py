"""Safe extraction: verified while streaming, hostile archives refused as a whole."""

from __future__ import annotations

import gzip
import io
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ocitools import make_tar, read_tree, sha256

from gitops.errors import SourceError, VerificationError
from gitops.sources.oci.extract import extract_layer
from gitops.sources.oci.verify import ExtractLimits

LIMITS = ExtractLimits(max_size=1 << 20, max_extracted_size=4 << 20, max_files=100)


class Trickle:
    """A network stand-in that hands out a few bytes at a time."""

    def __init__(self, data: bytes, step: int = 777) -> None:
        self._data = io.BytesIO(data)
        self._step = step

    def read(self, size: int) -> bytes:
        return self._data.read(min(size, self._step))


def extract(tmp_path: Path, blob: bytes, *, limits: ExtractLimits = LIMITS,
            digest: str | None = None, size: int | None = None) -> Path:
    dest = tmp_path / "out"
    dest.mkdir()
    extract_layer(Trickle(blob), dest, digest=digest or sha256(blob),
                  size=len(blob) if size is None else size, limits=limits,
                  display="oci://127.0.0.1:1/demo/app:v1")
    return dest


def entry(name: str, kind: bytes = tarfile.REGTYPE, *, link: str = "", size: int = 0,
          mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mode = kind, link, size, mode
    return info


def test_a_valid_archive_extracts_exactly(tmp_path: Path) -> None:
    blob = make_tar([
        entry("./", tarfile.DIRTYPE),
        ("./a.yaml", b"a: 1\n"),
        entry("sub", tarfile.DIRTYPE),
        ("sub/b.yaml", b"b: 2\n" * 1000),
        entry("sub/link.yaml", tarfile.SYMTYPE, link="../a.yaml"),
        entry("sub/hard.yaml", tarfile.LNKTYPE, link="a.yaml"),
        entry("run.sh", size=0, mode=0o755),
    ])
    out = extract(tmp_path, blob)
    assert read_tree(out) == {"a.yaml": b"a: 1\n", "run.sh": b"", "sub/b.yaml": b"b: 2\n" * 1000,
                              "sub/hard.yaml": b"a: 1\n", "sub/link.yaml": b"a: 1\n"}
    assert (out / "run.sh").stat().st_mode & 0o111


def test_concatenated_gzip_members_are_one_stream(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        info = tarfile.TarInfo("x.yaml")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"x: "))
    data = raw.getvalue()
    blob = gzip.compress(data[:700]) + gzip.compress(data[700:])
    assert read_tree(extract(tmp_path, blob)) == {"x.yaml": b"x: "}


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([("../evil.yaml", b"x")], "leaves the artifact"),
        ([("a/../../evil.yaml", b"x")], "leaves the artifact"),
        ([("/etc/evil.yaml", b"x")], "absolute path"),
        ([entry("l", tarfile.SYMTYPE, link="/etc/passwd")], "outside the artifact"),
        ([entry("a/l", tarfile.SYMTYPE, link="../../x")], "outside the artifact"),
        ([entry("h", tarfile.LNKTYPE, link="/etc/passwd")], "absolute path"),
        ([entry("h", tarfile.LNKTYPE, link="missing.yaml")], "not to an earlier file"),
        ([entry("dev", tarfile.CHRTYPE)], "device file"),
        ([entry("blk", tarfile.BLKTYPE)], "device file"),
        ([entry("fifo", tarfile.FIFOTYPE)], "device file or FIFO"),
        ([("a.yaml", b"1"), ("a.yaml", b"2")], "appears twice"),
        ([entry("d", tarfile.SYMTYPE, link="."), ("d/x.yaml", b"x")], "goes through 'd'"),
        ([("f", b"x"), ("f/x.yaml", b"x")], "goes through 'f'"),
        ([("back\\slash", b"x")], "backslash"),
    ],
)
def test_unsafe_entries_refuse_the_whole_artifact(
    tmp_path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]], reason: str
) -> None:
    with pytest.raises(VerificationError, match="unsafe artifact") as info:
        extract(tmp_path, make_tar([("ok.yaml", b"fine"), *entries]))
    assert reason in str(info.value)
    assert "oci://127.0.0.1:1/demo/app:v1" in str(info.value)


def test_a_symlink_chain_that_escapes_is_refused(tmp_path: Path) -> None:
    # Each link looks harmless by name; followed, b/c/s/../.. is above the root.
    blob = make_tar([
        entry("b", tarfile.DIRTYPE), entry("b/c", tarfile.DIRTYPE),
        entry("b/c/s", tarfile.SYMTYPE, link="../.."),
        entry("t", tarfile.SYMTYPE, link="b/c/s/../.."),
    ])
    with pytest.raises(VerificationError, match="resolves outside"):
        extract(tmp_path, blob)


def test_a_gzip_bomb_is_stopped_at_the_limit(tmp_path: Path) -> None:
    big = entry("zeros.bin", size=64 << 20)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        archive.addfile(big, io.BytesIO(bytes(64 << 20)))
    blob = gzip.compress(raw.getvalue(), compresslevel=1)
    assert len(blob) < 1 << 20
    with pytest.raises(VerificationError, match="max_extracted_size"):
        extract(tmp_path, blob)


def test_a_huge_pax_header_is_stopped_by_the_stream_limit(tmp_path: Path) -> None:
    # tarfile reads a PAX header into memory: the decompression bound must stop it.
    header = entry("././@PaxHeader", tarfile.XHDTYPE, size=32 << 20)
    raw = io.BytesIO()
    raw.write(header.tobuf(format=tarfile.USTAR_FORMAT))
    raw.write(b"9 a=" + bytes(32 << 20))
    blob = gzip.compress(raw.getvalue(), compresslevel=1)
    with pytest.raises(VerificationError, match="max_extracted_size"):
        extract(tmp_path, blob)


def test_too_many_entries(tmp_path: Path) -> None:
    blob = make_tar([(f"f{i}.yaml", b"") for i in range(5)])
    with pytest.raises(VerificationError, match="max_files=3"):
        extract(tmp_path, blob, limits=ExtractLimits(1 << 20, 1 << 20, 3))


def test_a_layer_over_max_size_is_not_even_read(tmp_path: Path) -> None:
    blob = make_tar([("a.yaml", b"x" * 5000)])
    with pytest.raises(VerificationError, match="max_size"):
        extract(tmp_path, blob, limits=ExtractLimits(10, 1 << 20, 10))


def test_a_digest_mismatch_is_refused_after_streaming(tmp_path: Path) -> None:
    blob = make_tar([("a.yaml", b"a: 1\n")])
    with pytest.raises(VerificationError, match="does not match its digest"):
        extract(tmp_path, blob, digest=sha256(b"something else"))


def test_tampered_bytes_report_the_digest_not_the_gzip_error(tmp_path: Path) -> None:
    blob = bytearray(make_tar([("a.yaml", bytes(range(256)) * 64)]))
    expected = sha256(bytes(blob))
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(VerificationError, match="does not match its digest"):
        extract(tmp_path, bytes(blob), digest=expected)


@pytest.mark.parametrize(("declared", "reason"), [(10, "larger than"), (10**6, "declares")])
def test_a_size_mismatch_is_refused(tmp_path: Path, declared: int, reason: str) -> None:
    blob = make_tar([("a.yaml", b"a")])
    with pytest.raises(VerificationError, match=reason):
        extract(tmp_path, blob, size=declared)


@pytest.mark.parametrize(
    ("blob", "reason"),
    [(b"plain text, not gzip", "not valid gzip"), (gzip.compress(b"x" * 2048), "not a valid tar"),
     (make_tar([("a.yaml", b"a" * 4096)])[:-40], "ends in the middle")],
)
def test_not_gzip_not_tar_or_truncated(tmp_path: Path, blob: bytes, reason: str) -> None:
    with pytest.raises(VerificationError, match=reason):
        extract(tmp_path, blob)


_BASE = gzip.decompress(make_tar([("grüße-日本.yaml", b"u"), ("a.yaml", b"a: 1\n" * 50),
                                  ("d/" + "n" * 120, b"b" * 3000)]))


@settings(max_examples=150)
@given(st.lists(st.tuples(st.integers(0, len(_BASE) - 1), st.integers(0, 255)),
                min_size=1, max_size=8))
def test_corrupted_archives_extract_or_fail_cleanly(flips: list[tuple[int, int]]) -> None:
    data = bytearray(_BASE)
    for position, value in flips:
        data[position] = value
    blob = gzip.compress(bytes(data))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            extract(root, blob)
        except SourceError as exc:  # VerificationError, or a name the OS refuses
            assert "oci://127.0.0.1:1/demo/app:v1" in str(exc)
        assert [p.name for p in root.iterdir()] == ["out"], "something was written outside"
