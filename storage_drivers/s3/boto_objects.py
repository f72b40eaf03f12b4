"""``ObjectCalls`` through a boto3 client, for endpoints the signed path (lean.py) does not
serve: virtual-hosted, accelerated or default AWS endpoints and anonymous access.

Imported on demand, with boto_clients.py: a driver on a path-style endpoint never loads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from offload import to_thread

from .lean import ObjectHead, Readable, byte_range, object_size
from .listing import LIST_PAGE, Listed, ListPage, Part, Upload

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef


class BotoObjects:
    """``ObjectCalls`` through a boto3 client, for endpoints the lean path does not serve."""

    presigns_inline = False

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def get(self, key: str, if_match: str = "") -> bytes:
        if if_match:
            return self._client.get_object(Bucket=self._bucket, Key=key, IfMatch=if_match)["Body"].read()
        return self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()

    def open(self, key: str, first: int, end: int | None, if_match: str = "") -> tuple[Readable, str, int]:
        wanted = byte_range(first, end)["Range"]
        if if_match:
            answer = self._client.get_object(Bucket=self._bucket, Key=key, Range=wanted, IfMatch=if_match)
        else:
            answer = self._client.get_object(Bucket=self._bucket, Key=key, Range=wanted)
        return (
            answer["Body"],
            answer["ETag"],
            object_size(answer.get("ContentRange"), answer["ContentLength"]),
        )

    async def head_async(self, key: str) -> ObjectHead:
        return await to_thread(self.head, key)

    async def get_async(self, key: str) -> bytes:
        return await to_thread(self.get, key)

    def head(self, key: str) -> ObjectHead:
        answer = self._client.head_object(Bucket=self._bucket, Key=key)
        return ObjectHead(
            answer["ContentLength"],
            answer["LastModified"].timestamp(),
            answer["ETag"],
            answer.get("Metadata", {}),
        )

    def put(self, key: str, body: bytes, arguments: Mapping[str, Any]) -> None:
        self._client.put_object(Bucket=self._bucket, Key=key, Body=body, **arguments)

    def copy(self, source: str, key: str, arguments: Mapping[str, Any], if_match: str = "") -> None:
        self._client.copy_object(
            Bucket=self._bucket,
            Key=key,
            CopySource={"Bucket": self._bucket, "Key": source},
            MetadataDirective="REPLACE",
            **({**arguments, "CopySourceIfMatch": if_match} if if_match else arguments),
        )

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self._bucket, Key=key)

    def delete_keys(self, keys: Sequence[str]) -> tuple[str, str] | None:
        batch: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys]
        result = self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True})
        for error in result.get("Errors", []):
            return error.get("Key", ""), error.get("Code", "")
        return None

    def first_modified(self, prefix: str) -> float | None:
        page = self.list_page(prefix, limit=1)
        return page.objects[0].modified if page.objects else None

    def list_page(
        self,
        prefix: str,
        *,
        delimited: bool = False,
        after: str = "",
        token: str = "",
        limit: int = LIST_PAGE,
    ) -> ListPage:
        request: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix, "MaxKeys": limit}
        if delimited:
            request["Delimiter"] = "/"
        if after:
            request["StartAfter"] = after
        if token:
            request["ContinuationToken"] = token
        answer = self._client.list_objects_v2(**request)
        objects = [
            Listed(item["Key"], item["Size"], item["LastModified"].timestamp())
            for item in answer.get("Contents", [])
        ]
        prefixes = [common["Prefix"] for common in answer.get("CommonPrefixes", [])]
        following = answer.get("NextContinuationToken") if answer.get("IsTruncated") else None
        return ListPage(objects, prefixes, following)

    def list_uploads(self, prefix: str) -> list[Upload]:
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self._bucket, Prefix=prefix
        )
        return [
            Upload(upload["Key"], upload["UploadId"], upload["Initiated"].timestamp())
            for page in pages
            for upload in page.get("Uploads", [])
        ]

    def create_upload(self, key: str, arguments: Mapping[str, Any]) -> str:
        return self._client.create_multipart_upload(Bucket=self._bucket, Key=key, **arguments)["UploadId"]

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes | bytearray) -> str:
        return self._client.upload_part(
            Bucket=self._bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=cast("bytes", body),  # botocore sends a bytearray as it is; the stubs know bytes
            ContentLength=len(body),
        )["ETag"]

    def copy_part(
        self, source: str, key: str, upload_id: str, number: int, *, if_match: str = "", span: str = ""
    ) -> str:
        request: dict[str, Any] = {
            "Bucket": self._bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": number,
            "CopySource": {"Bucket": self._bucket, "Key": source},
        }
        if if_match:
            request["CopySourceIfMatch"] = if_match
        if span:
            request["CopySourceRange"] = f"bytes={span}"
        copied = self._client.upload_part_copy(**request)
        return copied["CopyPartResult"]["ETag"]

    def complete_upload(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]]) -> None:
        completed: list[CompletedPartTypeDef] = [
            {"PartNumber": number, "ETag": etag} for number, etag in parts
        ]
        self._client.complete_multipart_upload(
            Bucket=self._bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": completed}
        )

    def abort_upload(self, key: str, upload_id: str) -> None:
        self._client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)

    def list_parts(self, key: str, upload_id: str) -> list[Part]:
        pages = self._client.get_paginator("list_parts").paginate(
            Bucket=self._bucket, Key=key, UploadId=upload_id
        )
        parts = [
            Part(part["PartNumber"], part["ETag"], part["Size"])
            for page in pages
            for part in page.get("Parts", [])
        ]
        return sorted(parts, key=lambda part: part.number)

    def presign(self, key: str, expires: int) -> str:
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires
        )

    def close(self) -> None:
        """The boto3 client is closed with the driver's others."""
