//! The S3 store against a real S3 server (s3s-fs on loopback).

use kubectl_migrate::store::{
    Addressing, CredentialSource, RetryPolicy, S3Options, Store, StoreConfig, StoreError, StoreUrl,
};
use std::time::Duration;
use testkit::s3::S3Server;

fn config(server: &S3Server, url: &str, credentials: &std::path::Path) -> StoreConfig {
    StoreConfig {
        url: StoreUrl::parse(url).unwrap(),
        s3: S3Options {
            endpoint: Some(server.endpoint()),
            addressing: Addressing::Path,
            credentials: CredentialSource::File {
                path: credentials.to_path_buf(),
                profile: "default".into(),
            },
            retry: RetryPolicy {
                attempts: 4,
                initial_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(50),
            },
            ..S3Options::default()
        },
        read_only: false,
    }
}

#[tokio::test]
async fn s3_round_trip_under_a_prefix() {
    let server = S3Server::start();
    server.create_bucket("backups");
    let folder = tempfile::tempdir().unwrap();
    let credentials = server.write_credentials_file(folder.path());
    let store = Store::open(&config(&server, "s3://backups/team/prod", &credentials)).unwrap();

    store.check().await.unwrap();
    store.put("backups/b1/manifest.json", b"{}").await.unwrap();
    store
        .put("backups/b1/resources/x.json", b"12345")
        .await
        .unwrap();
    store.put("backups/b2/manifest.json", b"{}").await.unwrap();

    assert_eq!(
        store.get("backups/b1/resources/x.json").await.unwrap(),
        b"12345"
    );
    assert!(store.exists("backups/b1/manifest.json").await.unwrap());
    assert!(!store.exists("backups/b3/manifest.json").await.unwrap());
    assert!(store.get("missing").await.unwrap_err().is_not_found());

    let listed = store.list("backups/b1/").await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        keys,
        ["backups/b1/manifest.json", "backups/b1/resources/x.json"]
    );
    assert_eq!(listed[1].size, 5);
    assert!(
        server
            .data_dir()
            .join("backups/team/prod/backups/b1/manifest.json")
            .exists()
    );

    store.delete("backups/b1/manifest.json").await.unwrap();
    assert!(!store.exists("backups/b1/manifest.json").await.unwrap());
    store.delete("backups/b1/manifest.json").await.unwrap();
}

#[tokio::test]
async fn s3_streams_files_both_ways() {
    let server = S3Server::start();
    server.create_bucket("data");
    let folder = tempfile::tempdir().unwrap();
    let credentials = server.write_credentials_file(folder.path());
    let store = Store::open(&config(&server, "s3://data", &credentials)).unwrap();

    let source = folder.path().join("in.bin");
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&source, &content).unwrap();
    store.put_file("volumes/v1/blob", &source).await.unwrap();
    let target = folder.path().join("out.bin");
    store.get_to_file("volumes/v1/blob", &target).await.unwrap();
    let downloaded = std::fs::read(&target).unwrap();
    assert_eq!(downloaded.len(), content.len());
    assert!(
        downloaded == content,
        "downloaded bytes differ from the upload"
    );
}

#[tokio::test]
async fn s3_wrong_credentials_are_denied() {
    let server = S3Server::start();
    server.create_bucket("backups");
    let folder = tempfile::tempdir().unwrap();
    let credentials = folder.path().join("wrong");
    std::fs::write(
        &credentials,
        "[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = wrong\n",
    )
    .unwrap();
    let store = Store::open(&config(&server, "s3://backups", &credentials)).unwrap();

    let error = store.check().await.unwrap_err();
    assert!(matches!(error, StoreError::AccessDenied { .. }), "{error}");
    assert!(!error.to_string().contains("wrong\n"), "{error}");
}

#[tokio::test]
async fn s3_missing_bucket_is_named() {
    let server = S3Server::start();
    let folder = tempfile::tempdir().unwrap();
    let credentials = server.write_credentials_file(folder.path());
    let store = Store::open(&config(&server, "s3://nothing-here", &credentials)).unwrap();

    let error = store.check().await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "failed to list bucket nothing-here at s3 endpoint {}: it does not exist or the credentials lack s3:ListBucket; create the bucket or fix the location URL",
            server.endpoint()
        )
    );
}

#[tokio::test]
async fn s3_read_only_location_rejects_writes() {
    let server = S3Server::start();
    server.create_bucket("backups");
    let folder = tempfile::tempdir().unwrap();
    let credentials = server.write_credentials_file(folder.path());
    let mut settings = config(&server, "s3://backups", &credentials);
    settings.read_only = true;
    let store = Store::open(&settings).unwrap();

    let error = store.put("a", b"x").await.unwrap_err();
    assert!(matches!(error, StoreError::ReadOnly { .. }), "{error}");
    assert!(store.list("").await.unwrap().is_empty());
}
