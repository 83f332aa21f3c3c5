//! The chat: a hub station and line-based clients.
//!
//! Every client is a TamTam station linked to the hub; the hub relays between them (the bus
//! routes multi-hop on its own). The ports:
//!
//! - **user** (1201, `Recipient::Station`): direct messages, `/msg bob hi`;
//! - **group** (1300–1399, `Recipient::Group`): a group named `ops` is the group of port
//!   `group_port("ops")`; members join it at start (`--join ops`);
//! - **broadcast** (1202, `Recipient::Broadcast`): every client, `/all hi` or plain text;
//! - **presence** (1203): the hub's notices of joins and leaves, broadcast to every client.
//!
//! **Presence and history are the hub's.** A client greets the hub (`Hello`, a request); the hub
//! answers with who is online and the recent history of the client's groups, then broadcasts a
//! join notice. A client that quits says `Bye`; one that vanishes (killed, link cut) drops out
//! of the hub's topology and the hub announces it as lost. The hub is a member of every group
//! port, so each group message reaches it as one more copy of the same send; it keeps the last
//! [`HISTORY_LINES_MAX`] lines of each group (bounded in lines and in groups). Keeping history
//! at one station makes a late joiner's view a single, consistent answer; the price is that
//! history lives as long as the hub does (it is not persisted).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tamtam_engine::core::{Context, Message, Outgoing, Recipient};
use tamtam_engine::driver::{Outcome, Station};
use tamtam_tpf::TpfMessage;

use crate::common;
use crate::proto::{
    self, ALL, Bye, ChatLine, GROUP_FIRST, GROUP_PORTS, GROUPS_PER_CLIENT_MAX, HISTORY_LINES_MAX,
    HUB, Hello, PRESENCE, Presence, TEXT_LEN_MAX, USER, Welcome,
};

/// Groups whose history the hub keeps at most; the group with the oldest last line is
/// forgotten first.
const HISTORY_GROUPS_MAX: usize = 256;
/// A client that said hello is announced as lost only if it stayed unreachable for this long
/// (its advert may reach the hub a little after its hello).
const LOST_AFTER: Duration = Duration::from_secs(2);
/// How long a client waits for the hub.
const HUB_WAIT: Duration = Duration::from_secs(10);
/// How long a send may take before the client reports it as failed.
const SEND_WAIT: Duration = Duration::from_secs(5);
/// Lines queued for the screen at most; more are dropped (counted) rather than blocking the
/// station's thread.
const SCREEN_QUEUE: usize = 4096;

// ------------------------------------------------------------------------------------------
// The hub.
// ------------------------------------------------------------------------------------------

struct Member {
    name: String,
    since: Instant,
}

/// One group's recent lines.
struct GroupHistory {
    lines: VecDeque<ChatLine>,
    /// When the last line arrived (a counter), to forget the stalest group first.
    touched: u64,
}

#[derive(Default)]
struct HubState {
    members: BTreeMap<u32, Member>,
    history: HashMap<String, GroupHistory>,
    clock: u64,
}

impl HubState {
    fn roster(&self) -> (Vec<String>, Vec<u32>) {
        let mut pairs: Vec<(&String, u32)> =
            self.members.iter().map(|(&id, m)| (&m.name, id)).collect();
        pairs.sort();
        (
            pairs.iter().map(|(n, _)| (*n).clone()).collect(),
            pairs.iter().map(|&(_, id)| id).collect(),
        )
    }

    fn presence(&self, name: &str, joined: bool, lost: bool) -> Presence {
        let (online, stations) = self.roster();
        Presence {
            joined,
            lost,
            name: name.to_string(),
            online,
            stations,
        }
    }

    fn record(&mut self, line: ChatLine) {
        self.clock += 1;
        let clock = self.clock;
        if !self.history.contains_key(&line.group) && self.history.len() >= HISTORY_GROUPS_MAX {
            let stalest = self
                .history
                .iter()
                .min_by_key(|(_, h)| h.touched)
                .map(|(name, _)| name.clone());
            if let Some(name) = stalest {
                self.history.remove(&name);
            }
        }
        let group = self
            .history
            .entry(line.group.clone())
            .or_insert_with(|| GroupHistory {
                lines: VecDeque::with_capacity(HISTORY_LINES_MAX),
                touched: 0,
            });
        if group.lines.len() == HISTORY_LINES_MAX {
            group.lines.pop_front();
        }
        group.lines.push_back(line);
        group.touched = clock;
    }

    /// Answers a hello from `station`.
    fn hello(&mut self, station: u32, hello: &Hello) -> Welcome {
        let refuse = |error: String| Welcome {
            error,
            online: Vec::new(),
            stations: Vec::new(),
            history: Vec::new(),
        };
        if !proto::valid_name(&hello.name) {
            return refuse(format!(
                "invalid name {:?}: use 1-32 letters, digits, '-' or '_'",
                hello.name
            ));
        }
        if let Some(group) = hello.groups.iter().find(|g| !proto::valid_name(g)) {
            return refuse(format!("invalid group name {group:?}"));
        }
        let taken = self
            .members
            .iter()
            .any(|(&id, m)| id != station && m.name == hello.name);
        if taken {
            return refuse(format!("the name {} is taken", hello.name));
        }
        self.members.insert(
            station,
            Member {
                name: hello.name.clone(),
                since: Instant::now(),
            },
        );
        let mut history = Vec::new();
        for group in &hello.groups {
            if let Some(h) = self.history.get(group) {
                history.extend(h.lines.iter().cloned());
            }
        }
        let (online, stations) = self.roster();
        Welcome {
            error: String::new(),
            online,
            stations,
            history,
        }
    }
}

/// Options of `chat_and_tty hub`.
pub struct HubOptions {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// The hub's station id (random when absent).
    pub id: Option<u32>,
}

fn broadcast_presence(ctx: &mut Context<'_>, presence: &Presence) {
    if let Ok(out) = Outgoing::message(Recipient::Broadcast, PRESENCE, presence) {
        ctx.send(out);
    }
}

/// Runs the hub until the process is stopped.
pub fn run_hub(options: &HubOptions) -> Result<(), String> {
    let id = common::station_id(options.id)?;
    let state = Arc::new(Mutex::new(HubState::default()));
    // The hub's log goes through the same bounded queue as a client's screen: handlers run on
    // the station's thread and must not block on a slow standard output.
    let (log_tx, log_rx) = mpsc::sync_channel(SCREEN_QUEUE);
    let log = Screen {
        lines: log_tx,
        dropped: Arc::new(AtomicU64::new(0)),
    };
    std::thread::spawn(move || print_screen(log_rx));
    let mut builder = Station::builder()
        .id(id)
        .name("chat-hub")
        .spool_dir(common::spool_dir("hub", id))
        .listen_tcp(options.listen);
    let hub_state = state.clone();
    let hub_log = log.clone();
    builder = builder.serve(HUB, move |ctx: &mut Context<'_>, m: &Message<'_>| {
        let mut state = hub_state.lock().expect("hub state");
        if let Ok(hello) = m.decode::<Hello>() {
            let welcome = state.hello(m.sender(), &hello);
            let accepted = welcome.error.is_empty();
            if let Ok(payload) = encode(&welcome) {
                ctx.reply(m, payload);
            }
            if accepted {
                hub_log.show(format!(
                    "hub: {} joined (station {})",
                    hello.name,
                    m.sender()
                ));
                let presence = state.presence(&hello.name, true, false);
                broadcast_presence(ctx, &presence);
            }
        } else if m.decode::<Bye>().is_ok() {
            if let Some(member) = state.members.remove(&m.sender()) {
                hub_log.show(format!("hub: {} left", member.name));
                let presence = state.presence(&member.name, false, false);
                broadcast_presence(ctx, &presence);
            }
        }
    });
    // One recorder per group port: the hub is a member of every group, so every group send
    // includes a copy for it.
    for port in GROUP_FIRST..GROUP_FIRST + GROUP_PORTS {
        let recorder = state.clone();
        builder = builder.join_group(port, move |_: &mut Context<'_>, m: &Message<'_>| {
            if let Ok(line) = m.decode::<ChatLine>() {
                if proto::valid_name(&line.group) && proto::group_port(&line.group) == m.port() {
                    recorder.lock().expect("hub state").record(line);
                }
            }
        });
    }
    let station = common::start(builder, "hub")?;
    common::announce("hub", &station);
    // Watch for clients that vanished without a goodbye: their station drops out of the
    // topology when its link dies (or its adverts stop).
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let reachable: Vec<u32> = match station.peers() {
            Ok(peers) => peers.into_iter().map(|(id, _)| id).collect(),
            Err(e) => return Err(format!("hub station stopped: {e}")),
        };
        let mut state = state.lock().expect("hub state");
        let lost: Vec<u32> = state
            .members
            .iter()
            .filter(|(id, m)| !reachable.contains(id) && m.since.elapsed() >= LOST_AFTER)
            .map(|(&id, _)| id)
            .collect();
        for id in lost {
            let Some(member) = state.members.remove(&id) else {
                continue;
            };
            log.show(format!(
                "hub: {} lost (station {id} unreachable)",
                member.name
            ));
            let presence = state.presence(&member.name, false, true);
            if let Ok(out) = Outgoing::message(Recipient::Broadcast, PRESENCE, &presence) {
                let _ = station.send(out);
            }
        }
    }
}

fn encode<T: TpfMessage>(value: &T) -> Result<Vec<u8>, tamtam_tpf::Error> {
    let mut payload = vec![0u8; value.encoded_len()];
    let n = value.encode(&mut payload)?;
    payload.truncate(n);
    Ok(payload)
}

// ------------------------------------------------------------------------------------------
// The client.
// ------------------------------------------------------------------------------------------

/// Options of `chat_and_tty chat`.
pub struct ClientOptions {
    /// The hub's address.
    pub connect: SocketAddr,
    /// The user's name.
    pub name: String,
    /// Groups to join.
    pub groups: Vec<String>,
    /// The client's station id (random when absent).
    pub id: Option<u32>,
}

/// Who is online, as the last presence notice said.
type Roster = Arc<Mutex<Vec<(String, u32)>>>;

/// Lines for the screen; a full queue drops the line and counts it.
#[derive(Clone)]
struct Screen {
    lines: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

impl Screen {
    fn show(&self, line: String) {
        if self.lines.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn print_screen(lines: Receiver<String>) {
    for line in lines {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

fn set_roster(roster: &Roster, names: &[String], stations: &[u32]) {
    let mut roster = roster.lock().expect("roster");
    roster.clear();
    roster.extend(names.iter().cloned().zip(stations.iter().copied()));
}

/// What a line typed by the user asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command<'a> {
    Direct { to: &'a str, text: &'a str },
    Group { group: &'a str, text: &'a str },
    All { text: &'a str },
    Who,
    Help,
    Quit,
    Nothing,
    Unknown(&'a str),
}

/// The first word of `rest` and what follows it.
fn split(rest: &str) -> (&str, &str) {
    let rest = rest.trim_start();
    match rest.split_once(' ') {
        Some((head, tail)) => (head, tail.trim_start()),
        None => (rest, ""),
    }
}

fn parse_command(line: &str) -> Command<'_> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Command::Nothing;
    }
    if let Some(rest) = line.strip_prefix('#') {
        let (group, text) = split(rest);
        return Command::Group { group, text };
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Command::All { text: line };
    };
    let (verb, rest) = split(rest);
    match verb {
        "msg" | "m" => {
            let (to, text) = split(rest);
            Command::Direct { to, text }
        }
        "g" | "group" => {
            let (group, text) = split(rest);
            Command::Group {
                group: group.trim_start_matches('#'),
                text,
            }
        }
        "all" => Command::All { text: rest },
        "who" => Command::Who,
        "help" => Command::Help,
        "quit" | "exit" => Command::Quit,
        other => Command::Unknown(other),
    }
}

const HELP: &str = "* commands: /msg NAME TEXT (direct), #GROUP TEXT or /g GROUP TEXT (group), \
/all TEXT or plain text (everyone), /who, /quit";

/// Runs a chat client until `/quit` or the end of standard input.
pub fn run_client(options: &ClientOptions) -> Result<(), String> {
    if !proto::valid_name(&options.name) {
        return Err(format!(
            "--name {:?}: use 1-32 letters, digits, '-' or '_'",
            options.name
        ));
    }
    let mut groups: Vec<String> = Vec::new();
    for group in &options.groups {
        let group = group.trim_start_matches('#').to_string();
        if !proto::valid_name(&group) {
            return Err(format!(
                "--join {group:?}: use 1-32 letters, digits, '-' or '_'"
            ));
        }
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    if groups.len() > GROUPS_PER_CLIENT_MAX {
        return Err(format!(
            "at most {GROUPS_PER_CLIENT_MAX} groups per client (--join)"
        ));
    }
    let id = common::station_id(options.id)?;
    let (lines_tx, lines_rx) = mpsc::sync_channel(SCREEN_QUEUE);
    let screen = Screen {
        lines: lines_tx,
        dropped: Arc::new(AtomicU64::new(0)),
    };
    let printer = std::thread::spawn(move || print_screen(lines_rx));
    let roster: Roster = Arc::new(Mutex::new(Vec::new()));

    let mut builder = Station::builder()
        .id(id)
        .name("chat-client")
        .spool_dir(common::spool_dir("chat", id))
        .connect_tcp(options.connect);
    let s = screen.clone();
    builder = builder.serve(USER, move |_: &mut Context<'_>, m: &Message<'_>| {
        if let Ok(line) = m.decode::<ChatLine>() {
            s.show(format!("[{} -> you] {}", line.from, line.text));
        }
    });
    let s = screen.clone();
    builder = builder.serve(ALL, move |_: &mut Context<'_>, m: &Message<'_>| {
        if let Ok(line) = m.decode::<ChatLine>() {
            s.show(format!("[all] {}: {}", line.from, line.text));
        }
    });
    let s = screen.clone();
    let r = roster.clone();
    let me = options.name.clone();
    builder = builder.serve(PRESENCE, move |_: &mut Context<'_>, m: &Message<'_>| {
        if let Ok(p) = m.decode::<Presence>() {
            set_roster(&r, &p.online, &p.stations);
            if p.joined && p.name == me {
                return; // "connected as …" says it
            }
            let what = match (p.joined, p.lost) {
                (true, _) => "joined",
                (false, false) => "left",
                (false, true) => "left (connection lost)",
            };
            s.show(format!(
                "* {} {what}; online: {}",
                p.name,
                p.online.join(", ")
            ));
        }
    });
    // Join each group's port once; names sharing a port are told apart by the line's group.
    let mut ports: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for group in &groups {
        ports
            .entry(proto::group_port(group))
            .or_default()
            .push(group.clone());
    }
    for (port, names) in ports {
        let s = screen.clone();
        builder = builder.join_group(port, move |_: &mut Context<'_>, m: &Message<'_>| {
            if let Ok(line) = m.decode::<ChatLine>() {
                if names.contains(&line.group) {
                    s.show(format!("[#{}] {}: {}", line.group, line.from, line.text));
                }
            }
        });
    }
    let station = common::start(builder, "chat")?;
    let result = client_session(&station, options, &groups, &screen, &roster);
    common::finish(station);
    let dropped = screen.dropped.load(Ordering::Relaxed);
    drop(screen);
    let _ = printer.join();
    if dropped > 0 {
        eprintln!("chat_and_tty: {dropped} lines were not shown (screen queue full)");
    }
    result
}

fn client_session(
    station: &Station,
    options: &ClientOptions,
    groups: &[String],
    screen: &Screen,
    roster: &Roster,
) -> Result<(), String> {
    station.wait_for_port(HUB, HUB_WAIT).map_err(|_| {
        format!(
            "no chat hub answered at {} within {HUB_WAIT:?}",
            options.connect
        )
    })?;
    let hello = Hello {
        name: options.name.clone(),
        groups: groups.to_vec(),
    };
    let request = Outgoing::message(Recipient::Service, HUB, &hello).map_err(|e| e.to_string())?;
    let answer = station
        .request(request, HUB_WAIT)
        .map_err(|e| format!("the hub did not answer: {e}"))?;
    let welcome =
        Welcome::decode(&answer).map_err(|e| format!("the hub sent a bad answer: {e}"))?;
    if !welcome.error.is_empty() {
        return Err(format!("the hub refused: {}", welcome.error));
    }
    set_roster(roster, &welcome.online, &welcome.stations);
    // Group and broadcast sends reach the stations this one knows at the moment of sending
    // (the bus expands them from its topology). A new station learns the others from their
    // periodic adverts (every 500 ms), so "connected" waits until everyone online is known.
    let deadline = Instant::now() + HUB_WAIT;
    loop {
        let known: Vec<u32> = station
            .peers()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        // The roster as presence notices keep it: someone who left meanwhile is not waited for.
        let missing = roster
            .lock()
            .expect("roster")
            .iter()
            .any(|(_, id)| *id != station.id() && !known.contains(id));
        if !missing {
            break;
        }
        if Instant::now() >= deadline {
            screen.show("* some of those online are not reachable yet".to_string());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    screen.show(format!(
        "* connected as {}; online: {}",
        options.name,
        welcome.online.join(", ")
    ));
    for line in &welcome.history {
        screen.show(format!(
            "[#{} history] {}: {}",
            line.group, line.from, line.text
        ));
    }
    if !groups.is_empty() {
        screen.show(format!(
            "* joined {}; {} lines of history",
            groups
                .iter()
                .map(|g| format!("#{g}"))
                .collect::<Vec<_>>()
                .join(", "),
            welcome.history.len()
        ));
    }
    let stdin = std::io::stdin();
    let mut typed = String::new();
    loop {
        typed.clear();
        match stdin.lock().read_line(&mut typed) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("cannot read standard input: {e}")),
        }
        if !typed.ends_with('\n') && typed.len() > TEXT_LEN_MAX {
            screen.show(format!("* line too long (at most {TEXT_LEN_MAX} bytes)"));
            continue;
        }
        let command = parse_command(&typed);
        if command == Command::Quit {
            break;
        }
        if let Some(note) = execute(station, &options.name, groups, roster, command) {
            screen.show(note);
        }
    }
    let bye = Outgoing::message(
        Recipient::Service,
        HUB,
        &Bye {
            name: options.name.clone(),
        },
    )
    .map_err(|e| e.to_string())?;
    let _ = station.send_and_wait(bye, SEND_WAIT);
    Ok(())
}

/// Carries out one typed command; returns a note for the screen, if any.
fn execute(
    station: &Station,
    me: &str,
    groups: &[String],
    roster: &Roster,
    command: Command<'_>,
) -> Option<String> {
    let line = |group: &str, text: &str| ChatLine {
        from: me.to_string(),
        group: group.to_string(),
        text: text.to_string(),
    };
    let (message, echo, what) = match command {
        Command::Nothing | Command::Quit => return None,
        Command::Help => return Some(HELP.to_string()),
        Command::Unknown(verb) => return Some(format!("* unknown command /{verb}; {HELP}")),
        Command::Who => {
            let roster = roster.lock().expect("roster");
            let names: Vec<&str> = roster.iter().map(|(n, _)| n.as_str()).collect();
            return Some(format!("* online: {}", names.join(", ")));
        }
        Command::Direct { to, text } => {
            if text.is_empty() {
                return Some("* usage: /msg NAME TEXT".to_string());
            }
            let station_of = roster
                .lock()
                .expect("roster")
                .iter()
                .find(|(n, _)| n == to)
                .map(|&(_, id)| id);
            let Some(target) = station_of else {
                return Some(format!("* {to} is not online"));
            };
            (
                Outgoing::message(Recipient::Station(target), USER, &line("", text)),
                Some(format!("[you -> {to}] {text}")),
                to.to_string(),
            )
        }
        Command::Group { group, text } => {
            if !proto::valid_name(group) || text.is_empty() {
                return Some("* usage: #GROUP TEXT or /g GROUP TEXT".to_string());
            }
            // A non-member may write to a group (it does not see the group's lines); say so.
            let echo =
                (!groups.iter().any(|g| g == group)).then(|| format!("[you -> #{group}] {text}"));
            (
                Outgoing::message(
                    Recipient::Group,
                    proto::group_port(group),
                    &line(group, text),
                ),
                echo,
                format!("#{group}"),
            )
        }
        Command::All { text } => (
            Outgoing::message(Recipient::Broadcast, ALL, &line("", text)),
            None,
            "everyone".to_string(),
        ),
    };
    let message = match message {
        Ok(message) => message,
        Err(e) => return Some(format!("* cannot send: {e}")),
    };
    match station.send_and_wait(message, SEND_WAIT) {
        Ok(Outcome::Delivered) => echo,
        Ok(Outcome::DeadLettered(record)) => {
            Some(format!("* not delivered to {what}: {:?}", record.reason))
        }
        Err(e) => Some(format!("* not delivered to {what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse_command("/msg bob hi there\n"),
            Command::Direct {
                to: "bob",
                text: "hi there"
            }
        );
        assert_eq!(
            parse_command("#ops deploy now"),
            Command::Group {
                group: "ops",
                text: "deploy now"
            }
        );
        assert_eq!(
            parse_command("/g #ops x"),
            Command::Group {
                group: "ops",
                text: "x"
            }
        );
        assert_eq!(parse_command("hello"), Command::All { text: "hello" });
        assert_eq!(parse_command("/all  hi"), Command::All { text: "hi" });
        assert_eq!(parse_command("/quit"), Command::Quit);
        assert_eq!(parse_command("  \n"), Command::Nothing);
        assert_eq!(parse_command("/frobnicate"), Command::Unknown("frobnicate"));
    }

    #[test]
    fn history_is_bounded_per_group_and_in_groups() {
        let mut state = HubState::default();
        for i in 0..HISTORY_LINES_MAX + 5 {
            state.record(ChatLine {
                from: "a".into(),
                group: "ops".into(),
                text: format!("line {i}"),
            });
        }
        let ops = &state.history["ops"].lines;
        assert_eq!(ops.len(), HISTORY_LINES_MAX);
        assert_eq!(ops.front().expect("kept").text, "line 5");
        for g in 0..HISTORY_GROUPS_MAX + 3 {
            state.record(ChatLine {
                from: "a".into(),
                group: format!("g{g}"),
                text: "x".into(),
            });
        }
        assert_eq!(state.history.len(), HISTORY_GROUPS_MAX);
        // The stalest groups went first: "ops" and the first few.
        assert!(!state.history.contains_key("ops"));
        assert!(
            state
                .history
                .contains_key(&format!("g{}", HISTORY_GROUPS_MAX + 2))
        );
    }

    #[test]
    fn hello_refuses_taken_names_and_replays_only_joined_groups() {
        let mut state = HubState::default();
        state.record(ChatLine {
            from: "a".into(),
            group: "ops".into(),
            text: "in ops".into(),
        });
        state.record(ChatLine {
            from: "a".into(),
            group: "dev".into(),
            text: "in dev".into(),
        });
        let hello = |name: &str, groups: &[&str]| Hello {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        let first = state.hello(7, &hello("alice", &[]));
        assert!(first.error.is_empty());
        assert!(first.history.is_empty());
        let clash = state.hello(8, &hello("alice", &["ops"]));
        assert!(clash.error.contains("taken"), "{}", clash.error);
        let carol = state.hello(9, &hello("carol", &["ops"]));
        assert!(carol.error.is_empty());
        assert_eq!(carol.online, vec!["alice".to_string(), "carol".to_string()]);
        assert_eq!(carol.stations, vec![7, 9]);
        assert_eq!(carol.history.len(), 1);
        assert_eq!(carol.history[0].text, "in ops");
        let bad = state.hello(10, &hello("no spaces", &[]));
        assert!(bad.error.contains("invalid name"), "{}", bad.error);
    }
}
