//! S3 on the local endpoint: a bucket holding one object, for the commands
//! that read `s3://` URLs.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

/// Creates `bucket` and puts `body` at `key` in it.
pub async fn put_object(s3: &Client, bucket: &str, key: &str, body: Vec<u8>) {
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("CreateBucket is answered");
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("PutObject is answered");
}
