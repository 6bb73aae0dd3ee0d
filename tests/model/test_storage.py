"""Object-storage URLs and the environment a client is configured from (TF Serving's names too)."""

from __future__ import annotations

import pytest

from model.storage import ObjectURL, StorageError, is_object_url, s3_endpoint


def test_urls_parse_into_bucket_and_prefix() -> None:
    url = ObjectURL.parse("s3://my-bucket/models//linear/")
    assert (url.scheme, url.bucket, url.prefix) == ("s3", "my-bucket", "models/linear")
    assert url.key("1", "saved_model.pb") == "models/linear/1/saved_model.pb"
    assert str(url.child("10")) == "s3://my-bucket/models/linear/10"
    assert ObjectURL.parse("gs://b-1").prefix == ""
    assert is_object_url("gs://b/x")
    assert not is_object_url("/models/linear")
    assert not is_object_url("s3:/collapsed-by-pathlib")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://bucket/x", "not an object-storage URL"),
        ("s3://", "invalid bucket name"),
        ("s3://Upper/x", "invalid bucket name"),
        ("gs://bucket/a/../b", "'.' and '..' are not allowed"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, problem: str) -> None:
    with pytest.raises(StorageError, match=problem):
        ObjectURL.parse(url)


@pytest.mark.parametrize(
    ("env", "endpoint"),
    [
        ({}, None),
        ({"AWS_ENDPOINT_URL": "https://s3.example:9000/"}, "https://s3.example:9000"),
        ({"AWS_ENDPOINT_URL_S3": "http://a:1", "AWS_ENDPOINT_URL": "http://b:2"}, "http://a:1"),
        ({"S3_ENDPOINT": "minio:9000"}, "https://minio:9000"),  # TF's S3 file system: https unless told
        ({"S3_ENDPOINT": "minio:9000", "S3_USE_HTTPS": "0"}, "http://minio:9000"),
        ({"S3_ENDPOINT": "http://minio:9000", "S3_USE_HTTPS": "1"}, "http://minio:9000"),
        ({"AWS_ENDPOINT_URL": "https://new", "S3_ENDPOINT": "old:1"}, "https://new"),
    ],
)
def test_the_s3_endpoint_comes_from_standard_then_tensorflow_variables(
    env: dict[str, str], endpoint: str | None
) -> None:
    assert s3_endpoint(env) == endpoint
