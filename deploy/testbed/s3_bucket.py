"""Creates an S3 bucket unless it exists, then waits until it answers.

Usage: s3_bucket.py ENDPOINT ACCESS SECRET BUCKET
"""
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

endpoint, access, secret, bucket = sys.argv[1:5]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=access,
    aws_secret_access_key=secret,
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
)
deadline = time.monotonic() + 60
last_error = None
while time.monotonic() < deadline:
    try:
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
        s3.head_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="_testbed/ready", Body=b"ok")
        s3.delete_object(Bucket=bucket, Key="_testbed/ready")
        sys.exit(0)
    except (BotoCoreError, ClientError) as err:
        last_error = err
        time.sleep(0.5)
sys.exit(f"bucket {bucket} at {endpoint} not usable after 60s: {last_error}")
