//! The remote terminal: a server station runs a shell in a pty per session; a client station
//! puts the local terminal in raw mode and carries every key to it.
//!
//! - **Keyboard → fast lane, in order.** The bus ACKs and resends fast-lane messages but does
//!   not order them. The client therefore keeps at most one `TtyInput` in flight: keys typed
//!   while one waits for its ACK join the next one (up to [`INPUT_BYTES_MAX`] bytes). Each
//!   carries `seq` (0, 1, 2, …) and the server checks it. An ACK means the server's handler
//!   took the bytes, so order holds across resends and reconnects. Ctrl-C is the byte 0x03
//!   (raw mode on the client): the pty's line discipline turns it into SIGINT for the
//!   foreground process of the remote shell, exactly as on a local terminal.
//! - **Resize → the same ordered channel.** SIGWINCH on the client reads the window size and
//!   sends it as a `TtyInput` with `rows`/`cols`; the server applies it with `TIOCSWINSZ`
//!   (portable-pty's `resize`), and the kernel signals the remote foreground process.
//! - **Output → stream lane.** The server streams what the shell writes on port
//!   [`TTY_OUTPUT`], stream id = session id; no ACK, no resend. A client that cannot keep up
//!   loses old output instead of slowing the shell; it counts lost frames (sequence gaps) and
//!   says so when it exits. Every listener of the port receives every session's frames and
//!   keeps its own session's (the session id is a 32-bit random number the client picks).
//! - **Leaving.** `~.` at the start of a line (after Enter), like ssh, or Ctrl-] closes the
//!   session; `~~` sends one `~`. When the remote shell exits, the client exits with its code.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portable_pty::{ChildKiller, CommandBuilder, MasterPty, PtySize, native_pty_system};
use tamtam_engine::core::{Context, Message, Outgoing, Recipient};
use tamtam_engine::driver::{Outcome, Station};

use crate::common;
use crate::proto::{
    INPUT_BYTES_MAX, TTY_CLIENT, TTY_CONTROL, TTY_OUTPUT, TtyClose, TtyExited, TtyInput, TtyOpen,
    TtyOpened,
};

/// How long the client waits for a server, and for its answer to open a session.
const SERVER_WAIT: Duration = Duration::from_secs(10);
/// How long one `TtyInput` may wait for its ACK before the client gives up.
const INPUT_WAIT: Duration = Duration::from_secs(10);
/// Input batches a session queues towards its pty at most; more closes the session.
const SESSION_INPUT_QUEUE: usize = 256;
/// Output frames the client queues for the screen at most; more are dropped (counted).
const SCREEN_QUEUE: usize = 1024;
/// Bytes the server reads from a pty at once (one stream frame at most).
const OUTPUT_CHUNK: usize = 8192;
/// Lifetime of output frames, in cycles. The bus's default (4) suits live media, where an old
/// frame is worthless; a burst of terminal output (`cat` of a large file) queues hundreds of
/// frames at once, and a longer life lets them through while still never resending any.
const OUTPUT_LIFETIME_CYCLES: u8 = 64;
/// After the remote shell exited, how long the client waits for its last output frames.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

// ------------------------------------------------------------------------------------------
// The server.
// ------------------------------------------------------------------------------------------

/// Options of `chat_and_tty tty-server`.
pub struct ServerOptions {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// The server's station id (random when absent).
    pub id: Option<u32>,
    /// Sessions open at once at most.
    pub sessions_max: usize,
    /// The program to run in each session's pty, with its arguments.
    pub command: Vec<String>,
}

/// What the server's handlers hand to its main thread (spawning a process is not done on the
/// station's thread).
enum ServerEvent {
    Open { client: u32, open: TtyOpen },
}

enum SessionInput {
    Keys(Vec<u8>),
    Resize(u16, u16),
}

struct Session {
    client: u32,
    next_seq: u64,
    input: SyncSender<SessionInput>,
    killer: Box<dyn ChildKiller + Send + Sync>,
}

type Sessions = Arc<Mutex<HashMap<u32, Session>>>;

fn pty_size(rows: u16, cols: u16) -> PtySize {
    PtySize {
        rows: if rows == 0 { 24 } else { rows.min(1000) },
        cols: if cols == 0 { 80 } else { cols.min(1000) },
        pixel_width: 0,
        pixel_height: 0,
    }
}

/// Hangs up `session`'s program. Called from the station's thread, so it logs nothing: the
/// session's reader thread reports the exit.
fn close_session(sessions: &Sessions, session: u32) {
    if let Some(mut s) = sessions.lock().expect("sessions").remove(&session) {
        // SIGHUP, as a terminal hang-up would. The reader thread then sees the pty close and
        // reports the exit.
        let _ = s.killer.kill();
    }
}

/// The server's handler of [`TTY_CONTROL`].
fn control_handler(
    sessions: Sessions,
    events: SyncSender<ServerEvent>,
) -> impl FnMut(&mut Context<'_>, &Message<'_>) + Send + 'static {
    move |_: &mut Context<'_>, m: &Message<'_>| {
        if let Ok(input) = m.decode::<TtyInput>() {
            let mut map = sessions.lock().expect("sessions");
            let Some(session) = map.get_mut(&input.session) else {
                return;
            };
            if session.client != m.sender() || input.seq < session.next_seq {
                return; // not this client's session, or a copy of what was applied
            }
            let mut overrun = input.seq > session.next_seq;
            if !overrun {
                session.next_seq += 1;
                if input.rows != 0 && input.cols != 0 {
                    overrun |= session
                        .input
                        .try_send(SessionInput::Resize(input.rows, input.cols))
                        .is_err();
                }
                if !input.data.is_empty() {
                    overrun |= session
                        .input
                        .try_send(SessionInput::Keys(input.data))
                        .is_err();
                }
            }
            drop(map);
            if overrun {
                close_session(&sessions, input.session);
            }
        } else if let Ok(open) = m.decode::<TtyOpen>() {
            let _ = events.try_send(ServerEvent::Open {
                client: m.sender(),
                open,
            });
        } else if let Ok(close) = m.decode::<TtyClose>() {
            let owned = sessions
                .lock()
                .expect("sessions")
                .get(&close.session)
                .is_some_and(|s| s.client == m.sender());
            if owned {
                close_session(&sessions, close.session);
            }
        }
    }
}

/// Runs the terminal server until the process is stopped.
pub fn run_server(options: &ServerOptions) -> Result<(), String> {
    if options.command.is_empty() {
        return Err("no command to run in the sessions".to_string());
    }
    let id = common::station_id(options.id)?;
    let sessions: Sessions = Arc::new(Mutex::new(HashMap::new()));
    let (events_tx, events) = mpsc::sync_channel(64);
    let builder = Station::builder()
        .id(id)
        .name("tty-server")
        .spool_dir(common::spool_dir("tty-server", id))
        .configure(|c| c.stream_lifetime = OUTPUT_LIFETIME_CYCLES)
        .listen_tcp(options.listen)
        .serve(TTY_CONTROL, control_handler(sessions.clone(), events_tx));
    let station = Arc::new(common::start(builder, "tty-server")?);
    common::announce("tty-server", &station);
    for event in events {
        let ServerEvent::Open { client, open } = event;
        let error = match open_session(&station, &sessions, options, client, &open) {
            Ok(()) => String::new(),
            Err(e) => {
                println!("tty-server: refused a session for station {client}: {e}");
                e
            }
        };
        let answer = TtyOpened {
            session: if error.is_empty() { open.session } else { 0 },
            error,
        };
        if let Ok(out) = Outgoing::message(Recipient::Station(client), TTY_CLIENT, &answer) {
            let _ = station.send(out);
        }
    }
    Err("the tty-server station stopped".to_string())
}

fn open_session(
    station: &Arc<Station>,
    sessions: &Sessions,
    options: &ServerOptions,
    client: u32,
    open: &TtyOpen,
) -> Result<(), String> {
    let session = open.session;
    {
        let map = sessions.lock().expect("sessions");
        if session == 0 || map.contains_key(&session) {
            return Err(format!("session id {session:08x} is in use"));
        }
        if map.len() >= options.sessions_max {
            return Err(format!(
                "this server runs {} sessions at most",
                options.sessions_max
            ));
        }
    }
    // The output stream reaches only stations this one knows to listen to the port: make
    // sure the client's advert is here before the shell prints its first prompt.
    let deadline = Instant::now() + SERVER_WAIT;
    loop {
        let peers = station.peers().map_err(|e| e.to_string())?;
        if peers
            .iter()
            .any(|(id, ports)| *id == client && ports.contains(&TTY_OUTPUT))
        {
            break;
        }
        if Instant::now() >= deadline {
            return Err("the client does not listen to the output port".to_string());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let pair = native_pty_system()
        .openpty(pty_size(open.rows, open.cols))
        .map_err(|e| format!("cannot open a pty: {e}"))?;
    let mut command = CommandBuilder::new(&options.command[0]);
    command.args(&options.command[1..]);
    if let Ok(cwd) = std::env::current_dir() {
        command.cwd(cwd);
    }
    let term_ok = !open.term.is_empty()
        && open
            .term
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    command.env("TERM", if term_ok { open.term.as_str() } else { "xterm" });
    let mut child = pair
        .slave
        .spawn_command(command)
        .map_err(|e| format!("cannot start {}: {e}", options.command[0]))?;
    // Only the child keeps the slave side open, so the master reads EOF once it has exited.
    drop(pair.slave);
    let master = pair.master;
    let reader = master
        .try_clone_reader()
        .map_err(|e| format!("cannot read the pty: {e}"))?;
    let writer = master
        .take_writer()
        .map_err(|e| format!("cannot write the pty: {e}"))?;
    let (input_tx, input_rx) = mpsc::sync_channel(SESSION_INPUT_QUEUE);
    sessions.lock().expect("sessions").insert(
        session,
        Session {
            client,
            next_seq: 0,
            input: input_tx,
            killer: child.clone_killer(),
        },
    );
    println!(
        "tty-server: session {session:08x} for station {client}, {}x{}",
        open.cols, open.rows
    );
    std::thread::spawn(move || write_pty(session, master, writer, input_rx));
    let station = station.clone();
    let sessions = sessions.clone();
    std::thread::spawn(move || {
        let frames = stream_output(&station, session, reader);
        let code = child.wait().map(|s| s.exit_code()).unwrap_or(255);
        sessions.lock().expect("sessions").remove(&session);
        println!("tty-server: session {session:08x} exited with code {code}");
        let exited = TtyExited {
            session,
            code,
            frames,
        };
        if let Ok(out) = Outgoing::message(Recipient::Station(client), TTY_CLIENT, &exited) {
            let _ = station.send_and_wait(out, INPUT_WAIT);
        }
    });
    Ok(())
}

/// Applies a session's input in order until the session is gone.
fn write_pty(
    session: u32,
    master: Box<dyn MasterPty + Send>,
    mut writer: Box<dyn Write + Send>,
    input: Receiver<SessionInput>,
) {
    for item in input {
        let ok = match item {
            SessionInput::Keys(bytes) => writer.write_all(&bytes).and_then(|()| writer.flush()),
            SessionInput::Resize(rows, cols) => {
                let size = pty_size(rows, cols);
                let done = master.resize(size).map_err(std::io::Error::other);
                println!(
                    "tty-server: session {session:08x} resized to {}x{}",
                    size.cols, size.rows
                );
                done
            }
        };
        if ok.is_err() {
            break;
        }
    }
}

/// Streams the pty's output until it closes; returns the frames sent.
fn stream_output(station: &Station, session: u32, mut reader: Box<dyn Read + Send>) -> u32 {
    let mut buffer = vec![0u8; OUTPUT_CHUNK];
    let mut frames = 0u32;
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                // A full command queue answers Busy: wait for the shard rather than lose output.
                let sent = loop {
                    match station.stream(TTY_OUTPUT, session, &buffer[..n]) {
                        Err(tamtam_engine::driver::StationError::Busy(_)) => {
                            std::thread::yield_now()
                        }
                        other => break other,
                    }
                };
                if sent.is_err() {
                    break;
                }
                frames = frames.wrapping_add(1);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EIO: every process holding the pty's slave side has gone.
            Err(_) => break,
        }
    }
    frames
}

// ------------------------------------------------------------------------------------------
// The client.
// ------------------------------------------------------------------------------------------

/// Options of `chat_and_tty tty`.
pub struct ClientOptions {
    /// The server's address.
    pub connect: SocketAddr,
    /// The client's station id (random when absent).
    pub id: Option<u32>,
}

/// Watches the keys for the escapes: `~.` at the start of a line, or Ctrl-] anywhere.
#[derive(Debug)]
pub struct Escape {
    at_line_start: bool,
    tilde_held: bool,
}

/// Ctrl-], the other way out.
pub const CTRL_RIGHT_BRACKET: u8 = 0x1d;

impl Default for Escape {
    fn default() -> Escape {
        Escape {
            at_line_start: true,
            tilde_held: false,
        }
    }
}

impl Escape {
    /// Appends to `out` what `keys` should send; returns true when the user asked to leave
    /// (what precedes the escape is still in `out`).
    pub fn feed(&mut self, keys: &[u8], out: &mut Vec<u8>) -> bool {
        for &key in keys {
            if key == CTRL_RIGHT_BRACKET {
                return true;
            }
            if self.tilde_held {
                self.tilde_held = false;
                match key {
                    b'.' => return true,
                    b'~' => {
                        out.push(b'~');
                        self.at_line_start = false;
                        continue;
                    }
                    _ => out.push(b'~'),
                }
            } else if self.at_line_start && key == b'~' {
                self.tilde_held = true;
                continue;
            }
            out.push(key);
            self.at_line_start = key == b'\r' || key == b'\n';
        }
        false
    }
}

/// Puts the terminal on standard input in raw mode, and back as it was when dropped.
struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    fn enter() -> Result<RawMode, String> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let saved =
            tcgetattr(&stdin).map_err(|e| format!("standard input is not a terminal: {e}"))?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw)
            .map_err(|e| format!("cannot put the terminal in raw mode: {e}"))?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{SetArg, tcsetattr};
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}

/// The local terminal's size (rows, columns), or 0s when unknown.
fn window_size() -> (u16, u16) {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which points to a live,
    // properly aligned `winsize`; fd 0 is only read.
    let rc = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut size) };
    if rc == 0 {
        (size.ws_row, size.ws_col)
    } else {
        (0, 0)
    }
}

/// Why the client ends.
enum End {
    /// The user typed the escape.
    Escape,
    /// The remote program exited.
    Exited(TtyExited),
    /// Something failed.
    Failed(String),
}

/// What the client's input thread queues for the sender, in order.
enum Key {
    Bytes(Vec<u8>),
    Resize(u16, u16),
}

/// Output received by the client, shared between the station's handler and the screen.
struct OutputState {
    session: u32,
    /// The next frame sequence expected; frames below it were shown or lost.
    next: AtomicU32,
    /// Frames missing (gaps in the sequence, or dropped when the screen queue was full).
    lost: AtomicU64,
    /// Frames written to the screen.
    written: AtomicU32,
}

/// Runs the terminal client; returns the process exit code.
pub fn run_client(options: &ClientOptions) -> Result<u8, String> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err("standard input is not a terminal (run tty in a terminal)".to_string());
    }
    let id = common::station_id(options.id)?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // The session id is the stream id of the output: random, so that sessions of several
    // clients on one server are told apart.
    let session = ((nanos ^ u64::from(id).rotate_left(32) ^ u64::from(std::process::id()))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        >> 32) as u32
        | 1;
    let output = Arc::new(OutputState {
        session,
        next: AtomicU32::new(0),
        lost: AtomicU64::new(0),
        written: AtomicU32::new(0),
    });
    let (screen_tx, screen_rx) = mpsc::sync_channel::<Vec<u8>>(SCREEN_QUEUE);
    let (control_tx, control_rx) = mpsc::sync_channel::<(u32, ControlEvent)>(16);
    let out = output.clone();
    let builder = Station::builder()
        .id(id)
        .name("tty-client")
        .spool_dir(common::spool_dir("tty", id))
        .configure(|c| c.stream_queue_capacity = SCREEN_QUEUE)
        .connect_tcp(options.connect)
        .serve(TTY_CLIENT, move |_: &mut Context<'_>, m: &Message<'_>| {
            if let Ok(opened) = m.decode::<TtyOpened>() {
                let _ = control_tx.try_send((m.sender(), ControlEvent::Opened(opened)));
            } else if let Ok(exited) = m.decode::<TtyExited>() {
                let _ = control_tx.try_send((m.sender(), ControlEvent::Exited(exited)));
            }
        })
        .subscribe(
            TTY_OUTPUT,
            move |_: &mut Context<'_>, frame: &Message<'_>| {
                if frame.route_id() != out.session {
                    return;
                }
                let seq = frame.header.sequence;
                let next = out.next.load(Ordering::Relaxed);
                if seq.wrapping_sub(next) >= 1 << 31 {
                    return; // older than what was shown: out of order, too late
                }
                out.lost
                    .fetch_add(u64::from(seq.wrapping_sub(next)), Ordering::Relaxed);
                out.next.store(seq.wrapping_add(1), Ordering::Relaxed);
                if screen_tx.try_send(frame.payload.to_vec()).is_err() {
                    out.lost.fetch_add(1, Ordering::Relaxed);
                }
            },
        );
    let station = Arc::new(common::start(builder, "tty")?);
    let result = client_session(&station, &output, screen_rx, control_rx);
    let lost = output.lost.load(Ordering::Relaxed);
    if std::env::var_os("TAMTAM_TTY_STATS").is_some() {
        if let Ok(stats) = station.stats() {
            eprintln!("chat_and_tty: {stats:?}");
        }
    }
    if let Ok(station) = Arc::try_unwrap(station) {
        common::finish(station);
    }
    if lost > 0 {
        eprintln!("chat_and_tty: {lost} output frames were lost on the way");
    }
    result
}

enum ControlEvent {
    Opened(TtyOpened),
    Exited(TtyExited),
}

fn client_session(
    station: &Arc<Station>,
    output: &Arc<OutputState>,
    screen: Receiver<Vec<u8>>,
    control: Receiver<(u32, ControlEvent)>,
) -> Result<u8, String> {
    let session = output.session;
    station
        .wait_for_port(TTY_CONTROL, SERVER_WAIT)
        .map_err(|_| format!("no tty-server answered within {SERVER_WAIT:?}"))?;
    let (rows, cols) = window_size();
    let open = TtyOpen {
        session,
        rows,
        cols,
        term: std::env::var("TERM")
            .unwrap_or_default()
            .chars()
            .take(64)
            .collect(),
    };
    let message =
        Outgoing::message(Recipient::Service, TTY_CONTROL, &open).map_err(|e| e.to_string())?;
    match station.send_and_wait(message, SERVER_WAIT) {
        Ok(Outcome::Delivered) => {}
        Ok(Outcome::DeadLettered(record)) => {
            return Err(format!(
                "the tty-server did not take the request: {:?}",
                record.reason
            ));
        }
        Err(e) => return Err(format!("the tty-server did not take the request: {e}")),
    }
    let deadline = Instant::now() + SERVER_WAIT;
    let server = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match control.recv_timeout(left) {
            Ok((server, ControlEvent::Opened(opened))) if opened.session == session => {
                if !opened.error.is_empty() {
                    return Err(format!("the tty-server refused: {}", opened.error));
                }
                break server;
            }
            Ok(_) => {}
            Err(_) => return Err("the tty-server did not open the session in time".to_string()),
        }
    };
    let raw = RawMode::enter()?;
    let (end_tx, end_rx) = mpsc::channel::<End>();
    let (keys_tx, keys_rx) = mpsc::channel::<Key>();

    // The screen: output frames in arrival order.
    let written = output.clone();
    std::thread::spawn(move || {
        let mut stdout = std::io::stdout();
        for bytes in screen {
            if stdout
                .write_all(&bytes)
                .and_then(|()| stdout.flush())
                .is_err()
            {
                break;
            }
            written.written.fetch_add(1, Ordering::Relaxed);
        }
    });
    // The keyboard, watched for the escapes.
    let keyboard_keys = keys_tx.clone();
    let keyboard_end = end_tx.clone();
    std::thread::spawn(move || read_keyboard(&keyboard_keys, &keyboard_end));
    // Window size changes.
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGWINCH])
        .map_err(|e| format!("cannot watch window size changes: {e}"))?;
    let resize_keys = keys_tx;
    std::thread::spawn(move || {
        for _ in signals.forever() {
            let (rows, cols) = window_size();
            if rows != 0 && cols != 0 && resize_keys.send(Key::Resize(rows, cols)).is_err() {
                break;
            }
        }
    });
    // The sender: one input message in flight at a time, in order.
    let sender_station = station.clone();
    let sender_end = end_tx.clone();
    std::thread::spawn(move || send_keys(&sender_station, server, session, &keys_rx, &sender_end));
    // Control messages (the remote program's exit).
    let control_end = end_tx.clone();
    std::thread::spawn(move || {
        for (from, event) in control {
            if let ControlEvent::Exited(exited) = event {
                if from == server && exited.session == session {
                    let _ = control_end.send(End::Exited(exited));
                    break;
                }
            }
        }
    });

    // Wait for the end, checking now and then that the server is still reachable.
    let end = loop {
        match end_rx.recv_timeout(Duration::from_millis(500)) {
            Ok(end) => break end,
            Err(RecvTimeoutError::Disconnected) => break End::Failed("internal error".into()),
            Err(RecvTimeoutError::Timeout) => {
                let reachable = station
                    .peers()
                    .map(|peers| peers.iter().any(|(id, _)| *id == server))
                    .unwrap_or(false);
                if !reachable {
                    break End::Failed(format!("lost the connection to station {server}"));
                }
            }
        }
    };
    match end {
        End::Escape => {
            let close = TtyClose { session };
            if let Ok(out) = Outgoing::message(Recipient::Station(server), TTY_CONTROL, &close) {
                let _ = station.send_and_wait(out, Duration::from_secs(2));
            }
            drop(raw);
            eprintln!("\r\n[chat_and_tty: left the session with station {server}]");
            Ok(0)
        }
        End::Exited(exited) => {
            // The output may still be on its way (another lane); wait for it, boundedly.
            let deadline = Instant::now() + DRAIN_WAIT;
            while Instant::now() < deadline {
                let done = u64::from(output.written.load(Ordering::Relaxed))
                    + output.lost.load(Ordering::Relaxed);
                if done >= u64::from(exited.frames) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(raw);
            eprintln!(
                "\r\n[chat_and_tty: the remote program exited with code {}]",
                exited.code
            );
            Ok(exited.code.min(255) as u8)
        }
        End::Failed(why) => {
            drop(raw);
            Err(why)
        }
    }
}

fn read_keyboard(keys: &Sender<Key>, end: &Sender<End>) {
    let mut stdin = std::io::stdin().lock();
    let mut escape = Escape::default();
    let mut buffer = [0u8; 1024];
    loop {
        let n = match stdin.read(&mut buffer) {
            Ok(0) => {
                let _ = end.send(End::Escape);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = end.send(End::Failed(format!("cannot read the keyboard: {e}")));
                return;
            }
        };
        let mut bytes = Vec::with_capacity(n);
        let leave = escape.feed(&buffer[..n], &mut bytes);
        if !bytes.is_empty() && keys.send(Key::Bytes(bytes)).is_err() {
            return;
        }
        if leave {
            let _ = end.send(End::Escape);
            return;
        }
    }
}

fn send_keys(
    station: &Station,
    server: u32,
    session: u32,
    keys: &Receiver<Key>,
    end: &Sender<End>,
) {
    let mut seq = 0u64;
    let mut held: Option<Key> = None;
    loop {
        let first = match held.take() {
            Some(key) => key,
            None => match keys.recv() {
                Ok(key) => key,
                Err(_) => return,
            },
        };
        let mut input = TtyInput {
            session,
            seq,
            rows: 0,
            cols: 0,
            data: Vec::new(),
        };
        match first {
            Key::Resize(rows, cols) => {
                input.rows = rows;
                input.cols = cols;
            }
            Key::Bytes(bytes) => {
                input.data = bytes;
                // Whatever was typed while the previous message waited for its ACK goes
                // along, up to one message's worth; a resize waits for the next message.
                while input.data.len() < INPUT_BYTES_MAX {
                    match keys.try_recv() {
                        Ok(Key::Bytes(more)) => input.data.extend_from_slice(&more),
                        Ok(resize) => {
                            held = Some(resize);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if input.data.len() > INPUT_BYTES_MAX {
                    let rest = input.data.split_off(INPUT_BYTES_MAX);
                    // Keep the order: the rest goes first in the next message.
                    held = Some(match held.take() {
                        None => Key::Bytes(rest),
                        Some(resize) => {
                            // Rare: a long paste and a resize at once. Send the rest now,
                            // then the resize.
                            if !send_one(station, server, &input, end) {
                                return;
                            }
                            seq += 1;
                            input = TtyInput {
                                session,
                                seq,
                                rows: 0,
                                cols: 0,
                                data: rest,
                            };
                            resize
                        }
                    });
                }
            }
        }
        if !send_one(station, server, &input, end) {
            return;
        }
        seq += 1;
    }
}

/// Sends one input message and waits for its ACK; false (and the end reported) on failure.
fn send_one(station: &Station, server: u32, input: &TtyInput, end: &Sender<End>) -> bool {
    let message = match Outgoing::message(Recipient::Station(server), TTY_CONTROL, input) {
        Ok(message) => message,
        Err(e) => {
            let _ = end.send(End::Failed(format!("cannot encode input: {e}")));
            return false;
        }
    };
    match station.send_and_wait(message, INPUT_WAIT) {
        Ok(Outcome::Delivered) => true,
        Ok(Outcome::DeadLettered(record)) => {
            let _ = end.send(End::Failed(format!(
                "keyboard input was not delivered: {:?}",
                record.reason
            )));
            false
        }
        Err(e) => {
            let _ = end.send(End::Failed(format!(
                "keyboard input was not delivered: {e}"
            )));
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(escape: &mut Escape, keys: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let leave = escape.feed(keys, &mut out);
        (out, leave)
    }

    #[test]
    fn tilde_dot_after_enter_leaves() {
        let mut e = Escape::default();
        assert_eq!(feed(&mut e, b"ls\r"), (b"ls\r".to_vec(), false));
        assert_eq!(feed(&mut e, b"~"), (Vec::new(), false));
        assert_eq!(feed(&mut e, b"."), (Vec::new(), true));
    }

    #[test]
    fn tilde_dot_at_the_very_start_leaves() {
        let mut e = Escape::default();
        assert_eq!(feed(&mut e, b"~."), (Vec::new(), true));
    }

    #[test]
    fn tilde_inside_a_line_is_plain() {
        let mut e = Escape::default();
        assert_eq!(feed(&mut e, b"cd ~.\r"), (b"cd ~.\r".to_vec(), false));
    }

    #[test]
    fn double_tilde_sends_one_and_other_keys_release_the_tilde() {
        let mut e = Escape::default();
        assert_eq!(feed(&mut e, b"~~x"), (b"~x".to_vec(), false));
        let mut e = Escape::default();
        assert_eq!(feed(&mut e, b"~/bin\r"), (b"~/bin\r".to_vec(), false));
    }

    #[test]
    fn ctrl_right_bracket_leaves_anywhere_and_keeps_what_came_before() {
        let mut e = Escape::default();
        assert_eq!(feed(&mut e, b"ab\x1dcd"), (b"ab".to_vec(), true));
    }

    #[test]
    fn ctrl_c_is_sent_as_a_byte() {
        let mut e = Escape::default();
        assert_eq!(feed(&mut e, b"\x03"), (b"\x03".to_vec(), false));
    }
}
