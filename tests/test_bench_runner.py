"""The bench says in its results when it wrote on ext4 without a journal, where a large delete
slows the rows that create files for minutes after it."""

from __future__ import annotations

from pathlib import Path

from bench.runner import WITHOUT_JOURNAL, described_filesystem


def journal_task(sysfs: Path, device: str, content: str) -> None:
    (sysfs / device).mkdir(parents=True)
    (sysfs / device / "journal_task").write_text(content)


def test_ext4_without_a_journal_is_named(tmp_path: Path) -> None:
    journal_task(tmp_path, "vda", "<none>\n")
    assert described_filesystem("/dev/vda", "ext4", tmp_path) == f"/dev/vda ext4 {WITHOUT_JOURNAL}"


def test_ext4_with_a_journal_is_not(tmp_path: Path) -> None:
    journal_task(tmp_path, "nvme0n1p2", "jbd2/nvme0n1p2-8\n")
    assert described_filesystem("/dev/nvme0n1p2", "ext4", tmp_path) == "/dev/nvme0n1p2 ext4"


def test_other_filesystems_and_unknown_devices_are_left_as_they_are(tmp_path: Path) -> None:
    journal_task(tmp_path, "vda", "<none>\n")
    assert described_filesystem("tmpfs", "tmpfs", tmp_path) == "tmpfs tmpfs"
    assert described_filesystem("overlay", "ext4", tmp_path) == "overlay ext4"  # no sysfs entry
