//! The remote terminal, used as a person would: the client runs in tmux, keys are typed with
//! `send-keys`, and the checks read the screen with `capture-pane`. The remote shell is bash
//! with a fixed prompt (`remote$ `) so that the screen is predictable.

mod screen;

use screen::{Server, Tmux, binary, quote};

fn tty_server() -> Server {
    Server::start(
        "tty-server",
        &[
            "tty-server",
            "--listen",
            "127.0.0.1:0",
            "--",
            "env",
            "PS1=remote$ ",
            "HISTFILE=/dev/null",
            "bash",
            "--norc",
            "--noprofile",
        ],
    )
}

fn connect(tmux: &Tmux, name: &str, server: &Server) {
    tmux.start(
        name,
        &format!("{} tty --connect {}", quote(binary()), server.addr),
    );
    tmux.wait(name, "the remote prompt", |s| {
        s.lines().any(|l| l == "remote$")
    });
}

/// The last line that is not empty.
fn last_line(screen: &str) -> &str {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// Pids of processes running `sleep 1000` whose parent's parent is `grandparent`: a sleep
/// started by a shell of this test's server.
fn sleeps_under(grandparent: u32) -> Vec<u32> {
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("procfs").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline != b"sleep\x001000\x00" {
            continue;
        }
        if parent_of(pid).and_then(parent_of) == Some(grandparent) {
            found.push(pid);
        }
    }
    found
}

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + screen::DEADLINE;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn echo_ctrl_c_resize_and_escape() {
    let Some(tmux) = Tmux::new("echo_ctrl_c_resize_and_escape") else {
        return;
    };
    let mut server = tty_server();
    connect(&tmux, "me", &server);

    // A command runs remotely and its output comes back (the typed line shows `$((6*7))`,
    // only the shell's output shows 42).
    tmux.line("me", "echo hello-$((6*7))");
    tmux.wait_text("me", "hello-42");

    // Ctrl-C reaches the remote foreground program: sleep really runs, then dies of SIGINT,
    // and the prompt comes back.
    let server_pid = server.pid();
    tmux.line("me", "sleep 1000");
    wait_until("the remote sleep to start", || {
        !sleeps_under(server_pid).is_empty()
    });
    tmux.keys("me", &["C-c"]);
    wait_until("the remote sleep to end", || {
        sleeps_under(server_pid).is_empty()
    });
    tmux.wait("me", "the prompt after ^C", |s| {
        s.contains("^C") && last_line(s) == "remote$"
    });
    tmux.line("me", "echo after-$((1+1))");
    tmux.wait_text("me", "after-2");

    // A resize of the local terminal reaches the remote pty.
    // The keyboard and the window-size signal are separate inputs on the client, as for any
    // terminal program, so the test waits until the server applied the size before typing
    // (as a person would look at the resized window first).
    tmux.resize("me", 70, 20);
    server.wait_log("the resize to 70x20", |log| {
        log.contains("resized to 70x20")
    });
    tmux.line("me", "stty size");
    tmux.wait_text("me", "\n20 70\n");
    tmux.resize("me", 90, 25);
    server.wait_log("the resize to 90x25", |log| {
        log.contains("resized to 90x25")
    });
    tmux.line("me", "stty size");
    tmux.wait_text("me", "\n25 90\n");

    // `~.` after Enter leaves; the server hangs up the session's shell.
    tmux.keys("me", &["Enter"]);
    tmux.keys("me", &["-l", "~."]);
    assert_eq!(tmux.wait_exit("me"), 0, "{}", tmux.screen("me"));
    tmux.wait_text("me", "left the session");
    server.wait_log("the session's end", |log| log.contains("exited with code"));
}

#[test]
fn remote_exit_code_and_ctrl_bracket() {
    let Some(tmux) = Tmux::new("remote_exit_code_and_ctrl_bracket") else {
        return;
    };
    let mut server = tty_server();
    connect(&tmux, "a", &server);
    connect(&tmux, "b", &server);

    // Two sessions on one server stay apart: each screen shows only its own output.
    tmux.line("a", "echo only-in-$((1))-a");
    tmux.line("b", "echo only-in-$((2))-b");
    tmux.wait_text("a", "only-in-1-a");
    tmux.wait_text("b", "only-in-2-b");
    assert!(!tmux.screen("a").contains("only-in-2-b"));
    assert!(!tmux.screen("b").contains("only-in-1-a"));

    // The remote program's exit code becomes the client's.
    tmux.line("a", "exit 3");
    assert_eq!(tmux.wait_exit("a"), 3, "{}", tmux.screen("a"));
    tmux.wait_text("a", "exited with code 3");

    // Ctrl-] leaves at once, anywhere in a line.
    tmux.keys("b", &["-l", "echo never"]);
    tmux.keys("b", &["C-]"]);
    assert_eq!(tmux.wait_exit("b"), 0, "{}", tmux.screen("b"));
    server.wait_log("both sessions' ends", |log| {
        log.matches("exited with code").count() == 2
    });
}
