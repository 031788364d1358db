"""Archive attacks are refused before anything is written outside the target."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from converter import archive
from converter.errors import ConversionError


def write_zip(path, members: dict[str, bytes], attrs: dict[str, int] | None = None, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            if attrs and name in attrs:
                info.external_attr = attrs[name] << 16
            zf.writestr(info, data)
    return path


def write_tar(path, add):
    with tarfile.open(path, "w:gz") as tf:
        add(tf)
    return path


def file_member(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


def test_a_normal_saved_model_zip_is_extracted(tmp_path):
    source = write_zip(tmp_path / "ok.zip", {"model/saved_model.pb": b"pb", "model/variables/v.index": b"i"})
    archive.extract(source, tmp_path / "out")
    assert (tmp_path / "out/model/saved_model.pb").read_bytes() == b"pb"
    assert archive.find_dir_with(tmp_path / "out", "saved_model.pb") == tmp_path / "out/model"


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt"])
def test_zip_with_parent_path_is_refused(tmp_path, name):
    source = write_zip(tmp_path / "bad.zip", {name: b"x"})
    with pytest.raises(ConversionError, match=r"points outside the archive"):
        archive.extract(source, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_zip_with_absolute_path_is_refused(tmp_path):
    source = write_zip(tmp_path / "bad.zip", {"/etc/evil": b"x"})
    with pytest.raises(ConversionError, match=r"absolute path"):
        archive.extract(source, tmp_path / "out")


def test_zip_with_symlink_member_is_refused(tmp_path):
    source = write_zip(tmp_path / "bad.zip", {"link": b"/etc/passwd"}, attrs={"link": 0o120777})
    with pytest.raises(ConversionError, match=r"is a link or special file"):
        archive.extract(source, tmp_path / "out")


def test_tar_with_symlink_hardlink_or_device_is_refused(tmp_path):
    for kind in (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE):

        def add(tf, kind=kind):
            info = tarfile.TarInfo("model/saved_model.pb")
            info.type = kind
            info.linkname = "/etc/passwd"
            tf.addfile(info)

        source = write_tar(tmp_path / f"bad-{kind!r}.tar.gz", add)
        with pytest.raises(ConversionError, match=r"is a link or special file"):
            archive.extract(source, tmp_path / "out")


def test_tar_with_parent_path_is_refused(tmp_path):
    source = write_tar(tmp_path / "bad.tar.gz", lambda tf: tf.addfile(*file_member("../../evil")))
    with pytest.raises(ConversionError, match=r"points outside the archive"):
        archive.extract(source, tmp_path / "out")


def test_too_many_members_are_refused(tmp_path):
    source = write_zip(tmp_path / "many.zip", {f"f{i}": b"" for i in range(11)})
    with pytest.raises(ConversionError) as failure:
        archive.extract(source, tmp_path / "out", archive.Limits(max_members=10))
    assert str(failure.value) == "The archive has more than 10 members; it was refused."
    assert not (tmp_path / "out" / "f0").exists()  # nothing written before every name was checked


def test_zip_bomb_is_refused_by_declared_size_and_ratio(tmp_path):
    zeros = b"\0" * (70 * 1024 * 1024)
    source = write_zip(tmp_path / "bomb.zip", {"zeros": zeros}, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ConversionError, match=r"compression ratio is suspiciously high"):
        archive.extract(source, tmp_path / "out")
    with pytest.raises(ConversionError) as failure:
        archive.extract(source, tmp_path / "out2", archive.Limits(max_total_bytes=1024 * 1024))
    assert str(failure.value) == "The archive member 'zeros' declares 73400320 bytes; at most 1048576 are allowed."
    assert not (tmp_path / "out" / "zeros").exists()


def lie_about_size(path, name: str, declared: int) -> None:
    """Rewrite a zip's local and central headers so ``name`` claims ``declared`` bytes."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    true_size = info.file_size.to_bytes(4, "little")
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(signature)
        assert data[at + offset : at + offset + 4] == true_size
        data[at + offset : at + offset + 4] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_zip_that_lies_about_a_member_size_never_writes_more_than_declared(tmp_path):
    source = write_zip(tmp_path / "liar.zip", {"big": b"y" * 500_000}, compression=zipfile.ZIP_DEFLATED)
    lie_about_size(source, "big", 100)
    with zipfile.ZipFile(source) as zf:
        assert zf.getinfo("big").file_size == 100  # the archive really does lie
    with pytest.raises(ConversionError, match=r"^The archive is damaged or malformed: Bad CRC-32"):
        archive.extract(source, tmp_path / "out")
    assert (tmp_path / "out" / "big").stat().st_size <= 100


def test_byte_budget_stops_members_that_unpack_to_more_than_the_total(tmp_path):
    source = write_tar(
        tmp_path / "two.tar.gz", lambda tf: [tf.addfile(*file_member(f"m{i}", b"y" * 3000)) for i in range(2)]
    )
    with pytest.raises(ConversionError, match=r"unpacks to more than 4096 bytes"):
        archive.extract(source, tmp_path / "out", archive.Limits(max_total_bytes=4096))


def tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.GNU_FORMAT)


def test_tar_bz2_declaring_a_huge_member_is_refused_at_its_header(tmp_path):
    import bz2
    import time

    source = tmp_path / "bomb.tar.bz2"
    source.write_bytes(bz2.compress(tar_header("model/saved_model.pb", 4 * 1024**3) + b"\0" * 10 * 1024 * 1024))
    assert source.stat().st_size < 4096
    started = time.process_time()
    with pytest.raises(ConversionError, match=r"compression ratio is suspiciously high"):
        archive.extract(source, tmp_path / "out")
    assert time.process_time() - started < 2
    assert not (tmp_path / "out" / "model").exists()


def test_zip_with_a_file_where_a_directory_must_be_is_refused(tmp_path):
    source = write_zip(tmp_path / "clash.zip", {"m/variables": b"x", "m/variables/variables.index": b"i"})
    with pytest.raises(ConversionError) as failure:
        archive.extract(source, tmp_path / "out")
    assert str(failure.value) == "The archive holds 'm/variables' both as a file and as a directory; it was refused."


def test_tar_with_a_directory_then_a_file_of_the_same_name_is_refused(tmp_path):
    def add(tf):
        tf.addfile(*file_member("m/variables/variables.index"))
        tf.addfile(*file_member("m/variables"))

    source = write_tar(tmp_path / "clash.tar.gz", add)
    with pytest.raises(ConversionError, match=r"holds 'm/variables' both as a file and as a directory"):
        archive.extract(source, tmp_path / "out")


def test_names_that_differ_only_after_a_nul_are_refused_as_duplicates(tmp_path):
    # tarfile cuts names at NUL: "a\0b" and "a\0c" would both be written to "a".
    blocks = [tar_header(name, 1) + b"x".ljust(512, b"\0") for name in ("a\x00b", "a\x00c")]
    source = tmp_path / "nul.tar"
    source.write_bytes(b"".join(blocks) + b"\0" * 1024)
    with pytest.raises(ConversionError, match=r"^The archive holds 'a' twice"):
        archive.extract(source, tmp_path / "out")


def test_duplicate_members_are_refused(tmp_path):
    source = write_tar(tmp_path / "dup.tar.gz", lambda tf: [tf.addfile(*file_member("a/b")) for _ in range(2)])
    with pytest.raises(ConversionError) as failure:
        archive.extract(source, tmp_path / "out")
    assert str(failure.value) == "The archive holds 'a/b' twice; it was refused."


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x" * 300, "has an over-long name"),
        ("d/" * 600 + "f", "name is longer than 1024 bytes"),
    ],
)
def test_nul_and_over_long_names_are_refused(tmp_path, name, message):
    source = tmp_path / "bad.tar"
    source.write_bytes(b"".join([tar_header(name, 1), b"x".ljust(512, b"\0"), b"\0" * 1024]))
    with pytest.raises(ConversionError, match=message):
        archive.extract(source, tmp_path / "out")
