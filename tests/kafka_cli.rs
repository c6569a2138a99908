//! Connection options on the command line: `--brokers` plus librdkafka
//! pass-through (`-X key=value`). Whatever goes wrong, the user gets exit
//! code 2 and one line in words, never a bare error code or enum name.

use std::net::TcpListener;
use std::process::Command;

use integr8tor::kafka::EmbeddedBroker;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn integr8tor(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_integr8tor"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("running integr8tor");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `topics create` against `brokers` with extra arguments; must fail with
/// exit 2 and exactly one line on stderr, which is returned.
fn failing_topics_create(brokers: &str, extra: &[&str]) -> String {
    let mut args = vec!["topics", "create", "--brokers", brokers, "--timeout", "3"];
    args.extend_from_slice(extra);
    let run = integr8tor(&args);
    assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
    assert_eq!(run.stdout, "", "{args:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: one line expected: {:?}",
        run.stderr
    );
    let line = lines[0].to_owned();
    assert!(line.starts_with("integr8tor: "), "{line}");
    assert_in_words(&line);
    line
}

/// No Rust enum names or librdkafka code prefixes leak into the message.
fn assert_in_words(line: &str) {
    for code_like in [
        "KafkaError",
        "Client creation error",
        "Client config error",
        "Meta data fetch error",
        "BrokerTransportFailure",
        "MetadataFetch",
        "Local: ",
        "RDKafka",
    ] {
        assert!(!line.contains(code_like), "{code_like:?} in {line:?}");
    }
}

fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
    // dropped: nothing listens there any more
}

#[test]
fn bad_librdkafka_options_are_refused_in_one_sentence() {
    let line = failing_topics_create(
        "127.0.0.1:1",
        &[
            "-X",
            "security.protocol=SASL_SSL",
            "-X",
            "sasl.mechanism=NOPE",
        ],
    );
    assert_eq!(
        line,
        "integr8tor: creating the admin client (brokers 127.0.0.1:1): Unsupported SASL mechanism: NOPE"
    );

    let line = failing_topics_create("127.0.0.1:1", &["-X", "sasl.mechansim=PLAIN"]);
    assert!(
        line.ends_with(r#"No such configuration property: "sasl.mechansim""#),
        "{line}"
    );

    let line = failing_topics_create("127.0.0.1:1", &["-X", "security.protocol=carrier-pigeon"]);
    assert!(
        line.ends_with(
            r#"Invalid value "carrier-pigeon" for configuration property "security.protocol""#
        ),
        "{line}"
    );
}

#[test]
fn malformed_options_and_missing_files_are_refused_before_connecting() {
    for (option, expected) in [
        ("novalue", "expected key=value"),
        ("bootstrap.servers=h:1", "use --brokers"),
        (
            "ssl.ca.location=/no/such/ca.pem",
            "cannot read /no/such/ca.pem: No such file or directory",
        ),
        ("ssl.key.location=", "the file name is empty"),
    ] {
        let run = integr8tor(&["topics", "create", "--brokers", "127.0.0.1:1", "-X", option]);
        assert_eq!(run.code, Some(2), "{option}: {}", run.stderr);
        let first = run.stderr.lines().next().unwrap_or_default();
        assert!(
            first.contains(&format!("bad librdkafka option `{option}`"))
                && first.contains(expected),
            "{option}: {}",
            run.stderr
        );
    }
}

#[test]
fn an_unreachable_broker_is_reported_with_its_cause() {
    let port = closed_port();
    let brokers = format!("127.0.0.1:{port}");
    let line = failing_topics_create(&brokers, &[]);
    assert!(
        line.starts_with(&format!(
            "integr8tor: reading the cluster's topics (brokers {brokers}): Broker transport failure"
        )) && line.contains("Connection refused"),
        "{line}"
    );

    let line = failing_topics_create("no-such-host.invalid:9092", &[]);
    assert!(line.contains("Failed to resolve"), "{line}");
}

#[test]
fn tls_or_sasl_against_a_plaintext_broker_says_what_went_wrong() {
    let broker = EmbeddedBroker::start(None).unwrap();
    let line = failing_topics_create(broker.bootstrap(), &["-X", "security.protocol=SSL"]);
    assert!(line.contains("SSL handshake failed"), "{line}");

    let line = failing_topics_create(
        broker.bootstrap(),
        &[
            "-X",
            "security.protocol=SASL_PLAINTEXT",
            "-X",
            "sasl.mechanism=PLAIN",
            "-X",
            "sasl.username=u",
            "-X",
            "sasl.password=p",
        ],
    );
    assert!(
        line.contains("SASL Handshake not supported by broker"),
        "{line}"
    );
}

#[test]
fn options_reach_librdkafka_and_a_good_connection_works() {
    let broker = EmbeddedBroker::start(None).unwrap();
    // harmless options that librdkafka accepts are passed through
    let run = integr8tor(&[
        "topics",
        "create",
        "--brokers",
        broker.bootstrap(),
        "-X",
        "client.id=cli-test",
        "-X",
        "socket.keepalive.enable=true",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        [
            "noise.params: exists",
            "noise.mod: exists",
            "noise.audio: exists",
            "noise.events: exists",
            "noise.state: exists"
        ]
    );
}

#[test]
fn without_brokers_the_command_uses_an_embedded_broker_and_says_so() {
    let run = integr8tor(&["topics", "create"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no --brokers given: using the embedded broker at 127.0.0.1:"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout.lines().count(), 5, "{}", run.stdout);
}
