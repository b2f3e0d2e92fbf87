//! The `wasmdo` CLI against a running host.

use wasmdo_test_artifacts::EXAMPLE_COUNTER;

use crate::harness::{TestHost, cli};

#[test]
fn deploy_and_call_from_the_command_line() {
    let host = TestHost::start();
    let (ok, out, err) = cli(&["deploy", "counter", EXAMPLE_COUNTER, "--server", &host.url]);
    assert!(ok, "{err}");
    assert!(
        out.contains("\"increment\""),
        "deploy lists the methods: {out}"
    );
    assert!(
        out.contains("func(by: s64) -> s64"),
        "with signatures: {out}"
    );
    let (ok, out, err) = cli(&[
        "call",
        "counter/alice",
        "increment",
        "[5]",
        "--server",
        &host.url,
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "5");
    let (ok, out, _) = cli(&["call", "counter/alice", "get", "--server", &host.url]);
    assert!(ok);
    assert_eq!(out.trim(), "5");
    // errors: printed as JSON on stderr, non-zero exit
    let (ok, _, err) = cli(&[
        "call",
        "counter/alice",
        "increment",
        "[\"x\"]",
        "--server",
        &host.url,
    ]);
    assert!(!ok);
    assert!(err.contains("InvalidArgument"), "{err}");
    let (ok, _, err) = cli(&["call", "counter", "get", "--server", &host.url]);
    assert!(!ok);
    assert!(err.contains("class/name"), "{err}");
}

#[test]
fn help_describes_every_command() {
    let (ok, out, _) = cli(&["--help"]);
    assert!(ok);
    for command in ["serve", "deploy", "call"] {
        assert!(out.contains(command), "{out}");
    }
}
