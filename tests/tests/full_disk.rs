//! Goal: a full disk is reported, never hidden: a bulk object that cannot be stored fails at
//! the sender with `StorageFailed` (nothing is ACKed that did not persist), and a durable
//! outbox that cannot journal refuses the send. Method: real files on a tiny tmpfs mounted
//! for the test (root only; skipped with a message elsewhere).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tamtam_engine::core::control::Reason;
use tamtam_engine::core::{Context, Message, Outgoing, Service};
use tamtam_engine::driver::{Station, StationError};

const WAIT: Duration = Duration::from_secs(30);

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("tamtam-full-{name}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "skipped: cannot mount a tmpfs at {} (needs root)",
                dir.display()
            );
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

struct Sink;

impl Service for Sink {
    fn on_message(&mut self, _: &mut Context<'_>, _: &Message<'_>) {}
}

#[test]
fn bulk_to_a_full_disk_fails_with_storage_failed() {
    let Some(disk) = Tmpfs::mount("spool", "1m") else {
        return;
    };
    let work = std::env::temp_dir().join(format!("tamtam-full-src-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let b = Station::builder()
        .id(2)
        .listen_tcp("127.0.0.1:0".parse().unwrap())
        .spool_dir(disk.path().join("spool"))
        .serve(5000, Sink)
        .build()
        .unwrap();
    let a = Station::builder()
        .id(1)
        .connect_tcp(b.local_addrs()[0])
        .spool_dir(work.join("a"))
        .build()
        .unwrap();
    a.wait_for_port(5000, WAIT).unwrap();
    let source = work.join("big.bin");
    std::fs::write(&source, vec![7u8; 8 * 1024 * 1024]).unwrap();
    let result = a.send_file(2, 5000, &source).unwrap().wait(WAIT);
    assert!(
        matches!(
            result,
            Err(StationError::DeadLettered(Reason::StorageFailed))
        ),
        "{result:?}"
    );
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn a_durable_outbox_that_cannot_journal_refuses_the_send() {
    let Some(disk) = Tmpfs::mount("outbox", "64k") else {
        return;
    };
    let spool = std::env::temp_dir().join(format!("tamtam-full-ob-{}", std::process::id()));
    let a = Station::builder()
        .id(1)
        .spool_dir(&spool)
        .durable_outbox(disk.path().join("outbox.journal"))
        .build()
        .unwrap();
    // Nobody is reachable: messages stay journaled until the disk is full.
    let mut refused = None;
    for i in 0..10_000u32 {
        match a.send(Outgoing::to_station(9, 2000, vec![0u8; 512]).route(i + 1)) {
            Ok(_) => {}
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let (count, error) = refused.expect("a 64 KiB journal cannot hold 10 000 messages of 512 B");
    assert!(
        count > 10,
        "journaled only {count} messages before refusing"
    );
    assert!(
        matches!(error, StationError::DeadLettered(Reason::StorageFailed)),
        "{error}"
    );
    a.shutdown();
    let _ = std::fs::remove_dir_all(&spool);
}
