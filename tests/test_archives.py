"""Archive attacks are refused before anything is written outside the target."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from conversions import archive
from conversions.errors import ConversionError


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
    assert archive.find_saved_model_dir(tmp_path / "out") == tmp_path / "out/model"


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
    assert str(failure.value) == "The archive has 11 members; at most 10 are allowed."


def test_zip_bomb_is_refused_by_declared_size_and_ratio(tmp_path):
    zeros = b"\0" * (70 * 1024 * 1024)
    source = write_zip(tmp_path / "bomb.zip", {"zeros": zeros}, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ConversionError, match=r"compression ratio is suspiciously high"):
        archive.extract(source, tmp_path / "out")
    with pytest.raises(ConversionError, match=r"unpacks to \d+ bytes; at most 1048576 are allowed"):
        archive.extract(source, tmp_path / "out2", archive.Limits(max_total_bytes=1024 * 1024))
    assert not (tmp_path / "out" / "zeros").exists()


def test_archive_lying_about_sizes_is_stopped_while_writing(tmp_path):
    source = write_tar(tmp_path / "liar.tar.gz", lambda tf: tf.addfile(*file_member("big", b"y" * 5000)))
    with pytest.raises(ConversionError, match=r"unpacks to more than the allowed size"):
        archive._copy_limited(io.BytesIO(b"y" * 5000), tmp_path / "big", [4096])
    archive.extract(source, tmp_path / "fine")
    assert (tmp_path / "fine/big").stat().st_size == 5000
