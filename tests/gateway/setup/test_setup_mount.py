"""``havel gateway setup`` checks the data directory's mount: on ext4 without ``commit=60`` it says how to
add it (docs/storage-wear.md: the default 5 s journal commit costs about 4 kB per uplink)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from havel.cli import cli
from havel.gateway.setup.install import check_mount

MOUNTS = """\
/dev/mmcblk0p2 / ext4 rw,noatime 0 0
/dev/mmcblk0p3 /var/lib/havel ext4 rw,noatime,commit=60 0 0
tmpfs /run tmpfs rw,nosuid 0 0
/dev/sda1 /srv ext4 rw,relatime,commit=30 0 0
"""


def test_the_mount_of_the_data_directory_is_the_longest_prefix_and_only_ext4_asks_for_commit() -> None:
    assert check_mount(Path("/var/lib/havel"), MOUNTS) == []  # its own partition, commit=60
    [root] = check_mount(Path("/var/lib/other"), MOUNTS)  # on / with the default commit
    assert "commit=60" in root and "/etc/fstab" in root and "remount,commit=60 /" in root
    [short] = check_mount(Path("/srv/havel"), MOUNTS)  # commit=30 is not enough
    assert "commit=30" in short
    assert check_mount(Path("/run/havel"), MOUNTS) == []  # not ext4: no journal interval to set


@pytest.fixture
def ext4_root(tmp_path: Path) -> Iterator[Path]:
    """A root whose /var/lib/havel is a loop-mounted ext4 image (as root; skipped where mount is refused)."""
    image, data = tmp_path / "card.ext4", tmp_path / "root" / "var" / "lib" / "havel"
    data.mkdir(parents=True)
    subprocess.run(["truncate", "-s", "16M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    if subprocess.run(["mount", "-o", "loop", str(image), str(data)], capture_output=True).returncode:
        pytest.skip("cannot loop-mount an ext4 image here (not root?)")
    try:
        yield tmp_path / "root"
    finally:
        subprocess.run(["umount", str(data)], check=False)


def test_setup_says_how_to_add_commit_60_and_is_quiet_once_it_is_there(ext4_root: Path) -> None:
    args = ["gateway", "setup", "--board", "seeed_wm1302_spi", "--gateway-eui", "B827EBFFFE6C1D2A"]
    args += ["--root", str(ext4_root), "--dry-run"]

    def setup() -> str:
        res = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res.output

    data = ext4_root / "var" / "lib" / "havel"
    assert f"remount,commit=60 {data}" in setup()
    subprocess.run(["mount", "-o", "remount,commit=60", str(data)], check=True)
    assert "commit=60" not in setup()
