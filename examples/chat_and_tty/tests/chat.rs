//! The chat, used as people would: three clients in tmux sessions, lines typed with
//! `send-keys`, checks on what each screen shows.

mod screen;

use screen::{Server, Tmux, binary, quote};

fn hub() -> Server {
    Server::start("hub", &["hub", "--listen", "127.0.0.1:0"])
}

fn join(tmux: &Tmux, hub: &Server, name: &str, groups: &[&str]) {
    let mut command = format!(
        "{} chat --connect {} --name {name}",
        quote(binary()),
        hub.addr
    );
    for group in groups {
        command.push_str(&format!(" --join {group}"));
    }
    tmux.start(name, &command);
    tmux.wait_text(name, &format!("* connected as {name}"));
}

#[test]
fn presence_groups_broadcast_direct_and_history() {
    let Some(tmux) = Tmux::new("presence_groups_broadcast_direct_and_history") else {
        return;
    };
    let hub = hub();
    join(&tmux, &hub, "alice", &["ops"]);
    join(&tmux, &hub, "bob", &[]);

    // Presence: alice sees bob arrive; bob's own greeting lists who is online.
    tmux.wait_text("alice", "* bob joined; online: alice, bob");
    tmux.wait_text("bob", "* connected as bob; online: alice, bob");

    // A group line reaches the group's members (alice here) and is kept by the hub.
    tmux.line("alice", "#ops deploy at 5");
    tmux.wait_text("alice", "[#ops] alice: deploy at 5");

    // A late joiner of #ops gets the group's recent history on joining.
    join(&tmux, &hub, "carol", &["ops"]);
    tmux.wait_text("carol", "[#ops history] alice: deploy at 5");
    tmux.wait_text("carol", "* joined #ops; 1 lines of history");
    tmux.wait_text("alice", "* carol joined; online: alice, bob, carol");
    tmux.wait_text("bob", "* carol joined; online: alice, bob, carol");

    // Live group lines now reach both members.
    tmux.line("carol", "#ops on it");
    tmux.wait_text("alice", "[#ops] carol: on it");
    tmux.wait_text("carol", "[#ops] carol: on it");

    // A direct message reaches its addressee only.
    tmux.line("alice", "/msg bob psst");
    tmux.wait_text("bob", "[alice -> you] psst");
    tmux.wait_text("alice", "[you -> bob] psst");

    // A broadcast reaches everyone. Once bob and carol show it, everything sent before it
    // has had its chance: bob (not in #ops) never saw a group line, carol never the direct one.
    tmux.line("bob", "/all lunch?");
    for name in ["alice", "bob", "carol"] {
        tmux.wait_text(name, "[all] bob: lunch?");
    }
    let bob = tmux.screen("bob");
    assert!(!bob.contains("deploy at 5"), "bob is not in #ops:\n{bob}");
    assert!(!bob.contains("on it"), "bob is not in #ops:\n{bob}");
    let carol = tmux.screen("carol");
    assert!(
        !carol.contains("psst"),
        "the direct line was for bob:\n{carol}"
    );

    // A second client may not take a name that is online: one clear line, non-zero exit.
    tmux.start(
        "alice2",
        &format!(
            "{} chat --connect {} --name alice",
            quote(binary()),
            hub.addr
        ),
    );
    assert_ne!(tmux.wait_exit("alice2"), 0);
    tmux.wait_text("alice2", "the hub refused: the name alice is taken");

    // Leaving: bob says goodbye; carol vanishes (her terminal closes under her) and the hub
    // notices her station is gone.
    tmux.line("bob", "/quit");
    let status = tmux.wait_exit("bob");
    assert_eq!(
        status,
        0,
        "bob exited with {status}:\n{}",
        tmux.screen("bob")
    );
    tmux.wait_text("alice", "* bob left; online: alice, carol");
    tmux.kill_session("carol");
    tmux.wait_text("alice", "* carol left (connection lost); online: alice");
    tmux.line("alice", "/who");
    tmux.wait_text("alice", "* online: alice\n");
}

#[test]
fn bad_input_gives_one_line_and_a_failure_status() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(binary())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["chat", "--name", "has space", "--connect", "127.0.0.1:9"]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("chat_and_tty: --name"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let (code, err) = run(&["tty", "--connect", "127.0.0.1:9"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("standard input is not a terminal"), "{err}");

    let (code, err) = run(&["hub", "--id", "0", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("station id must be in"), "{err}");
}
