"""A throwaway single-node Ceph RADOS Gateway: the real S3 server the S3 tests run against.

One monitor, one OSD (bluestore on a sparse file, so multi-GiB objects cost disk, not RAM),
no manager, and radosgw with one S3 user; every daemon listens on 127.0.0.1 only, keeps all
state under one directory and runs in the foreground in its own session, so stopping it
signals exactly the process group it started. Start-up takes a few seconds.

The session fixture ``ceph_rgw`` starts it the first time a test asks for it; ``s3_bucket``
gives each test module a fresh bucket.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from .processes import ServerProcess, free_port

DAEMONS = (
    "ceph-mon",
    "ceph-osd",
    "radosgw",
    "radosgw-admin",
    "ceph",
    "monmaptool",
    "ceph-authtool",
)
INSTALL_HINT = "apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common"

CONFIG_TEMPLATE = """\
[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{mon2_port},v1:127.0.0.1:{mon_port}]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
; the daemons trust each other; radosgw still checks every S3 signature
auth cluster required = none
auth service required = none
auth client required = none
; radosgw asks for a "secure" monitor session by default, which auth=none cannot give (it hangs)
ms mon client mode = crc secure
keyring = {dir}/keyring
run dir = {dir}/run
admin socket = {dir}/run/$name.asok
pid file = {dir}/run/$name.pid
log file = {dir}/log/$name.log
log to stderr = false
err to stderr = true
crash dir = {dir}/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
; without these each pool creation waits about a second for the next map epoch
paxos propose interval = 0.01
paxos min wait = 0.001

[mon]
mon data = {dir}/mon.$id
mon cluster log file = {dir}/log/cluster.log

[osd]
osd data = {dir}/osd.$id
osd objectstore = {store}
memstore device bytes = {store_bytes}
bluestore block path = {dir}/osd.$id/block.file
bluestore block size = {store_bytes}
bluestore block create = true
osd memory target = 939524096
osd op num shards = 1
osd op num threads per shard = 2

[client.rgw.0]
rgw data = {dir}/rgw
; tcp_nodelay: without it each small response waits ~40 ms on Nagle and delayed ACKs
rgw frontends = beast endpoint=127.0.0.1:{rgw_port} tcp_nodelay=1
rgw init timeout = 60
rgw thread pool size = 64
rgw dns name = localhost
; Reclaim deleted objects' space within seconds, not after two hours: a session writes and deletes
; many GiB, and a full OSD does not fail writes, it blocks them (every S3 request then hangs).
rgw gc obj min wait = 10
rgw gc processor period = 5
rgw gc processor max time = 5
"""


@dataclass
class CephRGW:
    """A single-node Ceph cluster serving S3 at ``endpoint`` (path-style addressing)."""

    directory: Path
    store: str = "bluestore"
    store_bytes: int = 24 << 30
    """The sparse bluestore file grows only as objects are written."""
    access_key: str = "dockyard-test-access"
    secret_key: str = "dockyard-test-secret"
    region: str = "us-east-1"
    rgw_port: int = field(default_factory=free_port)
    _daemons: list[ServerProcess] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.rgw_port}"

    @property
    def config_path(self) -> Path:
        return self.directory / "ceph.conf"

    def start(self) -> CephRGW:
        missing = [name for name in DAEMONS if shutil.which(name) is None]
        if missing:
            raise RuntimeError(f"Ceph is not installed (missing {', '.join(missing)}): {INSTALL_HINT}")
        for sub in ("run", "log", "crash", "mon.a", "osd.0", "rgw"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        mon_port, mon2_port = free_port(), free_port()
        self.config_path.write_text(
            CONFIG_TEMPLATE.format(
                fsid=fsid,
                dir=self.directory,
                mon_port=mon_port,
                mon2_port=mon2_port,
                rgw_port=self.rgw_port,
                store=self.store,
                store_bytes=self.store_bytes,
            )
        )
        try:
            self._start_monitor(fsid, f"[v2:127.0.0.1:{mon2_port},v1:127.0.0.1:{mon_port}]")
            self._start_osd()
            self._start_gateway()
            self._create_user()
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self, *command: str, timeout: float = 60) -> str:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}{self._logs()}")
        return done.stdout

    def _ceph(self, *args: str) -> str:
        return self._run("ceph", "-c", str(self.config_path), "--connect-timeout", "5", *args)

    def _daemon(self, name: str, *command: str) -> ServerProcess:
        process = ServerProcess([*command, "-f"], self.directory / "log" / f"{name}.out")
        self._daemons.append(process)
        return process

    def _wait(self, what: str, process: ServerProcess, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if not process.running():
                raise RuntimeError(f"{what} exited early:\n{self._logs()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not ready after {timeout}s:\n{self._logs()}")
            time.sleep(0.2)

    def _succeeds(self, *args: str) -> bool:
        try:
            self._ceph(*args)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return True

    def _start_monitor(self, fsid: str, address: str) -> None:
        keyring, monmap, conf = (
            self.directory / "keyring",
            self.directory / "monmap",
            str(self.config_path),
        )
        # auth is off, but the monitor's mkfs still wants a keyring
        self._run(
            "ceph-authtool",
            "--create-keyring",
            str(keyring),
            "--gen-key",
            "-n",
            "mon.",
            "--cap",
            "mon",
            "allow *",
        )
        self._run(
            "ceph-authtool",
            str(keyring),
            "--gen-key",
            "-n",
            "client.admin",
            "--cap",
            "mon",
            "allow *",
            "--cap",
            "osd",
            "allow *",
        )
        self._run("monmaptool", "--create", "--fsid", fsid, "--addv", "a", address, str(monmap))
        self._run(
            "ceph-mon",
            "-c",
            conf,
            "--mkfs",
            "-i",
            "a",
            "--monmap",
            str(monmap),
            "--keyring",
            str(keyring),
        )
        monitor = self._daemon("mon.a", "ceph-mon", "-c", conf, "-i", "a")
        self._wait("ceph-mon", monitor, lambda: self._succeeds("mon", "stat"), 60)

    def _start_osd(self) -> None:
        osd_uuid = str(uuid.uuid4())
        osd_id = self._ceph("osd", "new", osd_uuid).strip()
        conf = str(self.config_path)
        self._run("ceph-osd", "-c", conf, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid, timeout=120)
        osd = self._daemon("osd.0", "ceph-osd", "-c", conf, "-i", osd_id)

        def up() -> bool:
            try:
                return f"osd.{osd_id} up" in self._ceph("osd", "dump")
            except (RuntimeError, subprocess.TimeoutExpired):
                return False

        self._wait("ceph-osd", osd, up, 120)

    def _start_gateway(self) -> None:
        gateway = self._daemon("rgw.0", "radosgw", "-c", str(self.config_path), "-n", "client.rgw.0")
        gateway.wait_http(self.endpoint + "/", timeout=120)

    def stop_gateway(self) -> None:
        """Stop radosgw only (SIGTERM, then SIGKILL): S3 requests are refused while the cluster
        keeps every object, until ``start_gateway``."""
        for gateway in [d for d in self._daemons if d.command[0] == "radosgw"]:
            gateway.stop(timeout=10)
            self._daemons.remove(gateway)

    def freeze_gateway(self) -> None:
        """SIGSTOP radosgw: a hung server, whose port still takes connections (the kernel queues
        them) but answers nothing, until ``thaw_gateway``. Returns once every thread of it has
        stopped (the signal only asks), so nothing sent after the call is answered."""
        for gateway in [d for d in self._daemons if d.command[0] == "radosgw"]:
            gateway.signal_group(signal.SIGSTOP)
            deadline = time.monotonic() + 10
            while not _stopped(gateway.pid):
                assert time.monotonic() < deadline, "radosgw did not stop on SIGSTOP"
                time.sleep(0.001)

    def thaw_gateway(self) -> None:
        """SIGCONT radosgw after ``freeze_gateway``: it goes on with what it had queued."""
        for gateway in [d for d in self._daemons if d.command[0] == "radosgw"]:
            gateway.signal_group(signal.SIGCONT)

    def start_gateway(self) -> None:
        """Start radosgw again on the same port, after ``stop_gateway`` (else nothing to do)."""
        if not any(d.command[0] == "radosgw" and d.running() for d in self._daemons):
            self._start_gateway()

    def _create_user(self) -> None:
        self._run(
            "radosgw-admin",
            "-c",
            str(self.config_path),
            "user",
            "create",
            "--uid=dockyard",
            "--display-name=Dockyard tests",
            f"--access-key={self.access_key}",
            f"--secret={self.secret_key}",
        )

    def _logs(self) -> str:
        tails = []
        for log in sorted((self.directory / "log").glob("*")):
            lines = log.read_text(errors="replace").splitlines()[-15:]
            if lines:
                tails.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(tails)

    def stop(self) -> None:
        """Stop the gateway, the OSD, then the monitor: radosgw hangs if the cluster goes first."""
        while self._daemons:
            self._daemons.pop().stop(timeout=10)

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server, for test set-up and independent checks."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                **config,
            ),
        )

    def create_bucket(self, prefix: str = "dockyard") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}".lower()
        self.client().create_bucket(Bucket=name)
        return name

    def driver_parameters(self, bucket: str, **extra: Any) -> dict[str, Any]:
        """``storage.s3`` configuration for the registry's S3 driver on ``bucket``."""
        return {
            "accesskey": self.access_key,
            "secretkey": self.secret_key,
            "region": self.region,
            "regionendpoint": self.endpoint,
            "forcepathstyle": True,
            "secure": False,
            "bucket": bucket,
            **extra,
        }


def _stopped(pid: int) -> bool:
    """Whether every thread of process ``pid`` is stopped by a signal (state T in /proc)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        if fields[0] not in {"T", "t"}:
            return False
    return True


@pytest.fixture(scope="session")
def ceph_rgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CephRGW]:
    """The session's Ceph RADOS Gateway, started on first use and stopped at the end."""
    rgw = CephRGW(tmp_path_factory.mktemp("ceph")).start()
    try:
        yield rgw
    finally:
        rgw.stop()


@pytest.fixture(scope="module")
def s3_bucket(ceph_rgw: CephRGW) -> str:
    """A fresh, empty bucket for the test module."""
    return ceph_rgw.create_bucket()
