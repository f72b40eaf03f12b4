"""``storage.s3`` configuration: Distribution's keys, checked all at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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
_BOOLS = (
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


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"  # environment overrides arrive as strings
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def parse_settings(parameters: Parameters) -> S3Settings:
    """The settings in ``parameters``, or DriverConfigError naming every problem."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    known = {"bucket", "region", "storageclass", "loglevel", *_STRINGS, *_BOOLS, *_SIZES}
    unknown = sorted(set(parameters) - known)
    if unknown:
        problems.append(f"storage.s3: unknown parameters {', '.join(unknown)}")
    for name in ("bucket", "region"):
        value = parameters.get(name)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"storage.s3.{name} is required")
        else:
            values[name] = value.strip()
    for name in _STRINGS:
        value = parameters.get(name)
        if value is None or value == "":
            continue  # Distribution treats empty keys as absent (e.g. to use IAM credentials)
        if not isinstance(value, str):
            problems.append(f"storage.s3.{name} must be a string")
        else:
            values[name] = value
    for name in _BOOLS:
        if name in parameters:
            flag = _as_bool(parameters[name])
            if flag is None:
                problems.append(f"storage.s3.{name} must be true or false")
            else:
                values[name] = flag
    for name, (low, high) in _SIZES.items():
        if name in parameters:
            number = _as_int(parameters[name])
            if number is None or not low <= number <= high:
                problems.append(f"storage.s3.{name} must be an integer from {low} to {high}")
            else:
                values[name] = number
    if "storageclass" in parameters:
        storage_class = str(parameters["storageclass"]).upper()
        if storage_class not in STORAGE_CLASSES:
            problems.append(f"storage.s3.storageclass must be one of {', '.join(sorted(STORAGE_CLASSES))}")
        values["storageclass"] = storage_class
    if "loglevel" in parameters:
        level = str(parameters["loglevel"]).lower()
        if level not in LOG_LEVELS:
            problems.append(f"storage.s3.loglevel must be one of {', '.join(sorted(LOG_LEVELS))}")
        values["loglevel"] = level
    if ("accesskey" in values) != ("secretkey" in values):
        problems.append("storage.s3.accesskey and storage.s3.secretkey must be given together")
    redirect = values.get("redirectendpoint")
    if redirect is not None:
        parts = urlsplit(redirect)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path.strip("/") or parts.query:
            problems.append("storage.s3.redirectendpoint must be a scheme and host, without path or query")
    if problems:
        raise DriverConfigError(problems)
    return S3Settings(**values)
