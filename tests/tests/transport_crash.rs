//! Goal: the shared memory and file transports survive a peer process killed with
//! `kill -9`, and leave nothing stale behind. Method: `tt_node` processes on the two ends,
//! killed with SIGKILL at chosen points; the test follows their output lines and their
//! counters (`stats` on stdin), never sleeping to synchronise.
//!
//! - shm: the survivor notices the dead peer (dead-man: the rendezvous socket closes with the
//!   process, and heartbeats stop), a restarted peer reconnects and traffic resumes; after
//!   both ends died by `kill -9` the name can be bound again at once (no socket path, no
//!   file: nothing to clean up).
//! - file: a writer killed while it writes batches never makes the reader deliver a torn
//!   frame (neither do hand-made torn batch and temp files); its successor cleans the temp
//!   files; batches written while the reader is dead (killed) are delivered by its successor
//!   (store and forward). A reader killed between delivering a batch and deleting it is the
//!   unit test `file::tests::a_reader_restarted_before_deleting_delivers_again`.

mod kit;

use std::path::Path;
use std::time::Instant;

use kit::{Node, got_payloads, temp};
use tamtam_transports::file::{BatchWriter, EXTENSION};
use tamtam_transports::shm::{ShmConfig, ShmListener};

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn start(v: &[String]) -> Node {
    Node::start(&v.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn shm_peer_killed_is_noticed_reconnects_and_leaves_nothing_behind() {
    let dir = temp("shm-kill");
    let name = format!("crash-{}", std::process::id());
    let spool = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    let receiver_args = args(&[
        "--id",
        "2",
        "--shm-listen",
        &name,
        "--serve",
        "2000",
        "--spool",
        &spool("r"),
    ]);
    let sender_args = args(&[
        "--id",
        "1",
        "--shm-connect",
        &name,
        "--spool",
        &spool("s"),
        "--send-messages",
        "2",
        "2000",
        "50",
    ]);
    let mut receiver = start(&receiver_args);
    receiver.address();
    let mut sender = start(&sender_args);
    receiver.wait_for("50 messages", |l| got_payloads(l, 2000).len() >= 50);

    // kill -9 the client: the listener's side notices.
    let killed = Instant::now();
    sender.kill9();
    let mut noticed = None;
    kit::wait_until("the receiver noticing the dead client", || {
        let dead = receiver.stat("peers_dead") >= 1;
        if dead {
            noticed = Some(killed.elapsed());
        }
        dead
    });
    eprintln!(
        "shm: client killed, survivor noticed within {:?}",
        noticed.unwrap()
    );

    // A restarted client reconnects and its messages arrive.
    let mut sender = start(&sender_args);
    receiver.wait_for("50 more messages", |l| got_payloads(l, 2000).len() >= 100);

    // kill -9 the listener: the client notices.
    let killed = Instant::now();
    receiver.kill9();
    let mut noticed = None;
    kit::wait_until("the client noticing the dead listener", || {
        let dead = sender.stat("peers_dead") >= 1;
        if dead {
            noticed = Some(killed.elapsed());
        }
        dead
    });
    eprintln!(
        "shm: listener killed, survivor noticed within {:?}",
        noticed.unwrap()
    );
    sender.kill9();

    // Both ends died by SIGKILL: nothing is left to clean, the name binds again at once.
    ShmListener::bind(&name, &ShmConfig::default()).expect("the name is free again");
    let stale: Vec<_> = std::fs::read_dir("/dev/shm")
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !stale.iter().any(|n| n.to_string_lossy().contains("tamtam")),
        "stale files in /dev/shm: {stale:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn batch_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == EXTENSION))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn file_transport_never_delivers_a_torn_frame_across_kills() {
    let dir = temp("file-kill");
    let (ab, ba) = (dir.join("ab"), dir.join("ba"));
    let (ab_s, ba_s) = (ab.to_str().unwrap(), ba.to_str().unwrap());
    let spool = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    let receiver_args = args(&[
        "--id",
        "2",
        "--file-out",
        ba_s,
        "--file-in",
        ab_s,
        "--serve",
        "2000",
        "--spool",
        &spool("r"),
    ]);
    let sender_args = |tag: &str, count: &str| {
        args(&[
            "--id",
            "1",
            "--file-out",
            ab_s,
            "--file-in",
            ba_s,
            "--spool",
            &spool("s"),
            "--send-messages",
            "2",
            "2000",
            count,
            "--tag",
            tag,
        ])
    };
    let tagged = |lines: &[String], tag: &str| {
        let prefix = format!("{tag}-");
        let mut got: Vec<String> = got_payloads(lines, 2000)
            .into_iter()
            .filter(|p| p.starts_with(&prefix))
            .collect();
        got.sort();
        got.dedup();
        got.len()
    };
    let valid = |lines: &[String]| {
        got_payloads(lines, 2000).iter().all(|p| {
            p.split_once('-').is_some_and(|(tag, n)| {
                ["first", "second", "third"].contains(&tag) && n.parse::<u32>().is_ok()
            })
        })
    };

    // 1. The writer is killed while it writes batches.
    let mut receiver = start(&receiver_args);
    receiver.address();
    let mut sender = start(&sender_args("first", "3000"));
    receiver.wait_for("the first messages", |l| got_payloads(l, 2000).len() >= 100);
    sender.kill9();
    // Hand-made torn input too: a temp file (as a kill in mid-write leaves) and a torn
    // batch file (as a torn copy onto removable media leaves).
    let mut batch = BatchWriter::new();
    batch.push(&kit::fast_frame(1, 2, 2000, 1 << 32, b"TORN"));
    let bytes = batch.finish().to_vec();
    std::fs::write(ab.join(".tmp").join("99999999999999999999.ttb.tmp"), &bytes).unwrap();
    std::fs::write(
        ab.join("00000000000000000001.ttb"),
        &bytes[..bytes.len() - 7],
    )
    .unwrap();
    kit::wait_until("the torn batch rejected", || {
        !ab.join("00000000000000000001.ttb").exists()
    });

    // 2. A new writer: it removes the temp files, and its messages arrive.
    let second = start(&sender_args("second", "20"));
    receiver.wait_for("the new writer's messages", |l| tagged(l, "second") == 20);
    assert_eq!(std::fs::read_dir(ab.join(".tmp")).unwrap().count(), 0);
    assert!(
        valid(&receiver.seen),
        "a torn or foreign payload was delivered"
    );
    assert_eq!(receiver.stat("malformed"), 0);
    drop(second);

    // 3. The reader is killed; batches written meanwhile wait; its successor delivers them.
    receiver.kill9();
    let mut sender = start(&sender_args("third", "500"));
    kit::wait_until("batches waiting for the dead reader", || {
        !batch_files(&ab).is_empty()
    });
    let mut receiver = start(&receiver_args);
    receiver.wait_for("every message after the reader's restart", |l| {
        tagged(l, "third") == 500
    });
    assert!(
        valid(&receiver.seen),
        "a torn or foreign payload was delivered"
    );
    assert_eq!(receiver.stat("malformed"), 0);
    sender.kill9();
    receiver.kill9();
    let _ = std::fs::remove_dir_all(&dir);
}
