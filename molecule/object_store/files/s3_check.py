"""S3 checks of the object_store scenario, run on the controller against the gateway.

Reads ENDPOINT, BUCKET, ACCESS_KEY and SECRET_KEY from the environment and prints one JSON
object. Without arguments: what a PUT/GET round trip, a conditional PUT on the same key, a
wrong secret, an anonymous request and a bucket outside the identity's actions each gave.
With `read KEY`: the sha256 of that object as the gateway returns it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import urllib.error
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client(secret):
    return boto3.client(
        "s3",
        endpoint_url=os.environ["ENDPOINT"],
        aws_access_key_id=os.environ["ACCESS_KEY"],
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def error_of(call):
    """The S3 error code and HTTP status a call was refused with, or None if it passed."""
    try:
        call()
    except ClientError as e:
        return {"code": e.response["Error"]["Code"],
                "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}
    return None


def main():
    bucket = os.environ["BUCKET"]
    s3 = client(os.environ["SECRET_KEY"])
    if sys.argv[1:2] == ["read"]:
        body = s3.get_object(Bucket=bucket, Key=sys.argv[2])["Body"].read()
        print(json.dumps({"sha256": hashlib.sha256(body).hexdigest()}))
        return
    key = f"verify/{secrets.token_hex(8)}.zip"
    body = secrets.token_bytes(256 * 1024)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    read = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    result = {
        "key": key,
        "sha256": hashlib.sha256(body).hexdigest(),
        "read_back_identical": read == body,
        "conditional_put": error_of(
            lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"second", IfNoneMatch="*")),
        "after_conditional_put_identical":
            s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body,
        "conditional_put_new_key": error_of(
            lambda: s3.put_object(Bucket=bucket, Key=key + ".new", Body=b"x", IfNoneMatch="*")),
        "wrong_secret": error_of(
            lambda: client("not-the-secret-key-0000").get_object(Bucket=bucket, Key=key)),
        "other_bucket": error_of(lambda: s3.create_bucket(Bucket="not-" + bucket)),
    }
    try:
        urllib.request.urlopen(f"{os.environ['ENDPOINT']}/{bucket}/{key}", timeout=10)
        result["anonymous_status"] = 200
    except urllib.error.HTTPError as e:
        result["anonymous_status"] = e.code
    print(json.dumps(result))


if __name__ == "__main__":
    main()
