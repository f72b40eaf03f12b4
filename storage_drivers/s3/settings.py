"""``storage.s3`` configuration: Distribution's keys, checked all at once."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any
from urllib.parse import urlsplit

from config_reader import Section

from ..config import DriverConfigError, Parameters

MIB = 1 << 20
MIN_PART = 5 * MIB
"""S3 refuses smaller parts, except the last one of an upload."""
MAX_PART = 5 << 30
"""S3's largest part, and its largest single-request copy."""

STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER_IR",
        "NONE",  # Distribution's spelling of "send no storage class header"
    }
)
LOG_LEVELS = frozenset(
    {
        "off",
        "debug",
        "debugwithsigning",
        "debugwithhttpbody",
        "debugwithrequestretries",
        "debugwithrequesterrors",
        "debugwitheventstreambody",
    }
)


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    region: str
    accesskey: str | None = None
    """With ``secretkey``; when both are absent, boto3's chain (environment, profile, IAM)."""
    secretkey: str | None = None
    regionendpoint: str | None = None
    redirectendpoint: str | None = None
    forcepathstyle: bool = False
    rootdirectory: str = ""
    encrypt: bool = False
    keyid: str | None = None
    """KMS key for ``encrypt``; ignored without it, as in Distribution."""
    secure: bool = True
    skipverify: bool = False
    v4auth: bool = True
    chunksize: int = 10 * MIB
    storageclass: str = "STANDARD"
    objectacl: str | None = None
    useragent: str | None = None
    usedualstack: bool = False
    accelerate: bool = False
    usefipsendpoint: bool = False
    multipartcopychunksize: int = 32 * MIB
    multipartcopymaxconcurrency: int = 100
    multipartcopythresholdsize: int = 32 * MIB
    loglevel: str = "off"
    """Accepted for Distribution configs; the registry's ``log`` section sets logging."""

    @property
    def key_prefix(self) -> str:
        """What every object key starts with: Distribution's ``rootdirectory`` rule."""
        return (self.rootdirectory.rstrip("/") + "/").lstrip("/")

    def endpoint_url(self, endpoint: str | None) -> str | None:
        if not endpoint:
            return None
        if "://" in endpoint:
            return endpoint
        return ("https://" if self.secure else "http://") + endpoint

    def put_arguments(self) -> dict[str, Any]:
        """Headers every stored object gets: encryption, storage class, ACL."""
        arguments: dict[str, Any] = {"ContentType": "application/octet-stream"}
        if self.encrypt:
            arguments["ServerSideEncryption"] = "aws:kms" if self.keyid else "AES256"
            if self.keyid:
                arguments["SSEKMSKeyId"] = self.keyid
        if self.storageclass != "NONE":
            arguments["StorageClass"] = self.storageclass
        if self.objectacl:
            arguments["ACL"] = self.objectacl
        return arguments


_STRINGS = (
    "accesskey",
    "secretkey",
    "regionendpoint",
    "redirectendpoint",
    "keyid",
    "objectacl",
    "useragent",
    "rootdirectory",
)
_FLAGS = (
    "forcepathstyle",
    "encrypt",
    "secure",
    "skipverify",
    "v4auth",
    "usedualstack",
    "accelerate",
    "usefipsendpoint",
)
_SIZES = {
    "chunksize": (MIN_PART, MAX_PART),
    "multipartcopychunksize": (MIN_PART, MAX_PART),
    "multipartcopymaxconcurrency": (1, 1000),
    "multipartcopythresholdsize": (0, MAX_PART),
}


def parse_settings(parameters: Parameters) -> S3Settings:
    """The settings in ``parameters``, or DriverConfigError naming every problem."""
    problems: list[str] = []
    section = Section("storage.s3", parameters, problems)
    section.reject_unknown({"bucket", "region", "storageclass", "loglevel", *_STRINGS, *_FLAGS, *_SIZES})
    values: dict[str, Any] = {}
    for name in ("bucket", "region"):
        values[name] = section.string(name, required=True).strip()
    # Distribution treats empty keys as absent (e.g. to use IAM credentials).
    values.update({name: section.string(name) for name in _STRINGS if section.given(name)})
    values.update({name: section.flag(name) for name in _FLAGS if section.given(name)})
    for name, (low, high) in _SIZES.items():
        if section.given(name):
            values[name] = section.integer(name, default=0, minimum=low, maximum=high)
    values["storageclass"] = section.choice("storageclass", sorted(STORAGE_CLASSES), default="STANDARD")
    values["loglevel"] = section.choice("loglevel", sorted(LOG_LEVELS), default="off")
    if section.given("accesskey") != section.given("secretkey"):
        section.problem("accesskey", "must be given together with storage.s3.secretkey")
    redirect = section.url("redirectendpoint")
    if redirect is not None:
        parts = urlsplit(redirect)
        if parts.path.strip("/") or parts.query:
            section.problem("redirectendpoint", "must be a scheme and host, without path or query")
    if problems:
        raise DriverConfigError(problems)
    return S3Settings(**values)


def check_parameters(parameters: Parameters) -> None:
    """What ``S3Driver.from_parameters`` would refuse, found without loading boto3: the
    settings, and that boto3 is installed."""
    parse_settings(parameters)
    if find_spec("boto3") is None:
        raise DriverConfigError(["storage driver 's3' needs a package that is not installed: boto3"])
