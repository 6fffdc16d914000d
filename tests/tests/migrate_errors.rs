//! kubectl migrate with bad input: each case exits non-zero with one clear line and writes
//! nothing to the target cluster.

mod migrate_support;

use std::path::Path;
use std::time::{Duration, Instant};

use testkit::plugins::{stderr, stdout};
use testkit::s3::S3Server;

use migrate_support::{Cluster, assert_success, manifests_dir, migrate, run, s3_args};

/// Starts a source with the hello-world app and backs it up into `home`'s default folder as `hello`.
fn backed_up_source(home: &Path) -> Cluster {
    let source = Cluster::start();
    source.apply(&manifests_dir().join("helloworld-v1.yaml"));
    let output = run(migrate(Some(&source), home).args(["backup", "create", "hello"]));
    assert_success(&output, "backup create");
    source
}

#[test]
fn unknown_backup_is_rejected() {
    let home = tempfile::tempdir().unwrap();
    let target = Cluster::start();
    let before = target.snapshot();

    let output = run(migrate(Some(&target), home.path()).args([
        "restore",
        "create",
        "--from-backup",
        "nope",
    ]));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("backup nope not found in file://"),
        "{}",
        stderr(&output)
    );
    assert_eq!(target.snapshot(), before);
}

#[test]
fn tampered_object_fails_verify_and_restore() {
    let home = tempfile::tempdir().unwrap();
    let _source = backed_up_source(home.path());
    let object = home
        .path()
        .join("data/kubectl-migrate/backups/backups/hello/resources/apps/v1/deployments/default/hello-world.json");
    let text = std::fs::read_to_string(&object).unwrap();
    std::fs::write(
        &object,
        text.replace("\"replicas\":", "\"replicas\": 9, \"x\":"),
    )
    .unwrap();

    let output = run(migrate(None, home.path()).args(["backup", "verify", "hello"]));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("hello-world.json: SHA-256"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("failed verification: 1 of "),
        "{}",
        stderr(&output)
    );

    let target = Cluster::start();
    let before = target.snapshot();
    let output = run(migrate(Some(&target), home.path()).args([
        "restore",
        "create",
        "--from-backup",
        "hello",
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("backup hello is damaged"),
        "{}",
        stderr(&output)
    );
    assert_eq!(target.snapshot(), before);
}

#[test]
fn s3_problems_end_in_one_clear_line() {
    let home = tempfile::tempdir().unwrap();
    let source = Cluster::start();
    let server = S3Server::start();
    server.create_bucket("backups");

    // Wrong credentials.
    let wrong = home.path().join("wrong-credentials");
    std::fs::write(
        &wrong,
        "[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = not-the-secret\n",
    )
    .unwrap();
    let output = run(migrate(Some(&source), home.path())
        .args([
            "backup",
            "create",
            "b1",
            "--location",
            "s3://backups",
            "--endpoint",
            &server.endpoint(),
        ])
        .args(["--credentials-file", wrong.to_str().unwrap()]));
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains(&format!("at {} denied (", server.endpoint())),
        "{message}"
    );
    assert!(
        message.contains("is readable by every user: run chmod 600"),
        "{message}"
    );
    assert!(
        !message.contains("not-the-secret"),
        "the secret leaked: {message}"
    );
    assert_eq!(message.lines().count(), 2, "{message}");

    // Missing bucket, on restore: the target stays untouched.
    let target = Cluster::start();
    let before = target.snapshot();
    let output = run(migrate(Some(&target), home.path())
        .args(["restore", "create", "--from-backup", "b1"])
        .args(s3_args(&server, home.path(), "s3://no-such-bucket")));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("bucket no-such-bucket"),
        "{}",
        stderr(&output)
    );
    assert_eq!(target.snapshot(), before);

    // Endpoint down: retries, then one line.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let output = run(migrate(Some(&target), home.path())
        .args([
            "restore",
            "create",
            "--from-backup",
            "b1",
            "--location",
            "s3://backups",
            "--endpoint",
            &endpoint,
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIATEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret"));
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "kubectl-migrate: error: failed to reach s3 endpoint {endpoint}: connection refused after 4 attempts: check --endpoint\n"
        )
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "no backoff between attempts"
    );
    assert_eq!(target.snapshot(), before);
}

#[test]
fn malformed_mappings_are_usage_errors() {
    let home = tempfile::tempdir().unwrap();
    let _source = backed_up_source(home.path());
    let target = Cluster::start();
    let before = target.snapshot();

    let cases = [
        (
            "--namespace-mappings",
            "shop",
            "invalid --namespace-mappings entry \"shop\": use old:new, separated by commas",
        ),
        (
            "--storage-class-mappings",
            "a:b:c",
            "invalid --storage-class-mappings entry \"a:b:c\"",
        ),
        (
            "--image-mappings",
            "registry.local",
            "invalid --image-mappings entry \"registry.local\"",
        ),
    ];
    for (flag, value, expected) in cases {
        let output = run(migrate(Some(&target), home.path()).args([
            "restore",
            "create",
            "--from-backup",
            "hello",
            flag,
            value,
        ]));
        assert_eq!(
            output.status.code(),
            Some(2),
            "{flag} {value}: {}",
            stderr(&output)
        );
        assert!(stderr(&output).contains(expected), "{}", stderr(&output));
    }
    assert_eq!(target.snapshot(), before);
}

#[test]
fn interrupted_backup_stays_incomplete() {
    let home = tempfile::tempdir().unwrap();
    let source = Cluster::start();
    for file in [
        "helloworld-v1.yaml",
        "helloworld-v2.yaml",
        "online-boutique.yaml",
    ] {
        source.apply(&manifests_dir().join(file));
    }
    // Slow requests keep the backup running long enough to interrupt it midway.
    source.server.faults().latency(Duration::from_millis(300));

    let child = migrate(Some(&source), home.path())
        .args([
            "backup",
            "create",
            "slow",
            "--concurrency",
            "1",
            "--page-size",
            "5",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let resources = home
        .path()
        .join("data/kubectl-migrate/backups/backups/slow/resources");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !resources.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        resources.exists(),
        "the backup wrote nothing within 60 seconds"
    );
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    source.server.faults().clear();

    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("backup slow interrupted"),
        "{}",
        stderr(&output)
    );

    let output = run(migrate(None, home.path()).args(["backup", "get"]));
    assert!(
        stdout(&output).contains("slow   Incomplete"),
        "{}",
        stdout(&output)
    );

    let target = Cluster::start();
    let before = target.snapshot();
    let output = run(migrate(Some(&target), home.path()).args([
        "restore",
        "create",
        "--from-backup",
        "slow",
    ]));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is incomplete (it has no manifest)"),
        "{}",
        stderr(&output)
    );
    assert_eq!(target.snapshot(), before);
}
