//! The load tester's own correctness: a short fanout against a real
//! in-process Parley reports no loss, and a faulty server's drop, swap,
//! repeat and cut are each caught and counted; members that stop reading
//! are cut by Parley (1013) while the others lose nothing.

mod common;

use common::run::{assert_delivered_once, figure, loadtest, parley, stop};
use common::{faulty_server, Faults};

#[test]
fn parley_delivers_every_acked_message_once_in_order() {
    let server = parley(|_| {});
    let report = loadtest(
        server.local_addr(),
        &[
            "fanout",
            "--rooms",
            "3",
            "--members",
            "20",
            "--publishers",
            "6",
            "--rate",
            "300",
            "--duration",
            "2",
            "--grace",
            "5",
        ],
    );
    stop(server);
    assert_delivered_once(&report, 20, 500);
    assert!(figure(&report, "latency_p50_us") > 0, "{}", report.table());
}

const SMALL_RUN: &[&str] = &[
    "fanout",
    "--rooms",
    "1",
    "--members",
    "4",
    "--rate",
    "40",
    "--duration",
    "1",
    "--grace",
    "2",
];

#[test]
fn a_dropped_a_swapped_and_a_repeated_message_are_caught() {
    let addr = faulty_server(Faults {
        drop: Some(3),
        swap: Some((5, 6)),
        dup: Some(8),
        ..Faults::default()
    });
    let report = loadtest(addr, SMALL_RUN);
    let table = report.table();
    assert!(!report.ok(), "{table}");
    assert_eq!(figure(&report, "lost"), 1, "{table}");
    assert_eq!(figure(&report, "reordered"), 1, "{table}");
    assert_eq!(figure(&report, "duplicated"), 1, "{table}");
    assert_eq!(report.failures.len(), 3, "{table}");
}

#[test]
fn a_cut_member_resumes_with_since_and_misses_nothing() {
    let addr = faulty_server(Faults {
        cut: Some(10),
        ..Faults::default()
    });
    let report = loadtest(addr, SMALL_RUN);
    let table = report.table();
    assert!(report.ok(), "{table}");
    assert_eq!(figure(&report, "closed_1013"), 1, "{table}");
    assert_eq!(figure(&report, "resumed"), 1, "{table}");
    assert_eq!(figure(&report, "lost"), 0, "{table}");
}

#[test]
fn a_cut_member_that_does_not_resume_is_reported_as_cut_off() {
    let addr = faulty_server(Faults {
        cut: Some(10),
        ..Faults::default()
    });
    let mut args = SMALL_RUN.to_vec();
    args.push("--no-reconnect");
    let report = loadtest(addr, &args);
    let table = report.table();
    assert!(report.ok(), "{table}");
    assert_eq!(figure(&report, "cut_off_members"), 1, "{table}");
    assert!(figure(&report, "cut_off_missing") > 0, "{table}");
    assert_eq!(figure(&report, "lost"), 0, "{table}");
}

#[test]
fn custom_protocol_judges_loss_and_order_by_marker() {
    let addr = faulty_server(Faults {
        drop: Some(3),
        swap: Some((5, 6)),
        dup: Some(8),
        ..Faults::default()
    });
    let mut args = vec![
        "--protocol",
        "custom",
        "--send-template",
        r#"{"type":"send","room":"{room}","text":"{text}","cid":"c"}"#,
    ];
    args.extend_from_slice(SMALL_RUN);
    let report = loadtest(addr, &args);
    let table = report.table();
    assert_eq!(figure(&report, "lost"), 1, "{table}");
    assert_eq!(figure(&report, "reordered"), 1, "{table}");
    assert_eq!(figure(&report, "duplicated"), 1, "{table}");
    assert!(
        report.notes.iter().any(|n| n.contains("no seqs")),
        "{table}"
    );
}

#[test]
fn slow_members_are_cut_with_1013_and_the_rest_lose_nothing() {
    // 4 KB texts at 500 msg/s per room for 3 s: 6 MB for each member
    // that stops reading, past the ~4 MB that loopback socket buffers
    // hold plus a small outbound cap.
    let server = parley(|c| c.max_outbound_bytes = 65_536);
    let report = loadtest(
        server.local_addr(),
        &[
            "fanout",
            "--rooms",
            "2",
            "--members",
            "6",
            "--publishers",
            "2",
            "--slow-members",
            "4",
            "--rate",
            "1000",
            "--size",
            "4000",
            "--duration",
            "3",
            "--grace",
            "5",
        ],
    );
    stop(server);

    let table = report.table();
    assert_eq!(figure(&report, "slow_members"), 4, "{table}");
    assert_eq!(figure(&report, "slow_cut_1013"), 4, "{table}");
    assert_eq!(figure(&report, "slow_not_cut"), 0, "{table}");
    // Every acked message reached the 4 normal members of its room.
    assert_delivered_once(&report, 4, 1000);
}
