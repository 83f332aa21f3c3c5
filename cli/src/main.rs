//! The `tamtam` command.
//!
//! `tamtam demo` runs two stations on loopback and checks all three lanes; it needs no
//! configuration and no external server. `tamtam bench` measures TamTam next to raw
//! baselines (see `bench/RESULTS.md`). `tamtam station` runs a station from a TOML file or
//! flags; `send`, `listen`, `trace` and `stats` join a running bus as short-lived stations.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod client;
mod config;
mod demo;
mod show;
mod signal;
mod station;

/// TamTam: a realtime communication engine with a three-lane Safari Bus.
#[derive(Parser)]
#[command(name = "tamtam", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const STATION_HELP: &str = "\
Runs one station until Ctrl-C or SIGTERM, then shuts it down cleanly (links closed, threads \
joined). Settings come from a TOML file (--config FILE; see cli/station.example.toml) and/or \
flags; a flag overrides the file's key of the same name, and a list given on the command line \
(--connect-tcp, --echo, ...) replaces the file's list.

Once running it prints one line, for scripts to wait on:
  station 2 ready: tcp 127.0.0.1:7000 (io_uring, 1 core; echo 2001, sink 2002)
then one line per message, file or frame arriving on a --sink, --join-group or --subscribe port.

Examples:
  tamtam station --config station.toml
  tamtam station 2 --listen-tcp 127.0.0.1:7000 --echo 2001 --sink 2002
  tamtam station --config station.toml --id 3 --connect-tcp 127.0.0.1:7000 --listen-tcp 127.0.0.1:7001
  tamtam station 4 --bind-udp 0.0.0.0:7100 --udp-peer 192.0.2.10:7100 --sink 2002 --json";

const SEND_HELP: &str = "\
Links to a running station (--connect), sends one message on the fast lane and waits for its \
ACK. The message is the MESSAGE argument, the contents of --file, or standard input. Exits \
non-zero, with one line on stderr, if the peer is unreachable, the destination is unknown, the \
message is dead-lettered or no ACK arrives within --timeout.

With --request, waits for the reply and prints it (text if printable UTF-8, else `hex ...`).
With --bulk FILE, sends the file over the bulk lane (disk to disk, resumable), with a progress \
bar, and returns once the receiver holds it durably.

Examples:
  tamtam send --connect 127.0.0.1:7000 --to 2 --port 2002 'hello'
  echo ping | tamtam send --connect 127.0.0.1:7000 --to 2 --port 2001 --request
  tamtam send --connect 127.0.0.1:7000 --port 2002 --file message.bin
  tamtam send --connect 127.0.0.1:7000 --to 2 --port 2002 --bulk disk.img";

const LISTEN_HELP: &str = "\
Joins the bus through a running station (--connect) as a station of its own, serves the given \
ports, groups and stream ports, and prints what arrives, one line each: the payload as text \
when it is printable UTF-8, else as `hex ...`; with --json, one JSON object per line. Runs \
until Ctrl-C, or until --count arrivals (then until their ACKs went out, at most --timeout \
more). A line on stderr says which station id it listens as \
(use it as `tamtam send --to`).

Examples:
  tamtam listen --connect 127.0.0.1:7000 --id 50 --port 2002
  tamtam listen --connect 127.0.0.1:7000 --port 2002 --group 4100 --json --count 10
  tamtam listen --connect 127.0.0.1:7000 --subscribe 3000";

const TRACE_HELP: &str = "\
Sends one traced message to --to STATION, --port PORT (default 2, the Reporter, which every \
station serves) and prints its route hop by hop as the stations on the way report it \
(TRACE_REPORT): who received it, forwarded it to whom, claimed and acknowledged it. This \
command collects the reports itself; a station running with collect_traces nearer to the route \
would take them instead.

Examples:
  tamtam trace --connect 127.0.0.1:7000 --to 3
  tamtam trace --connect 127.0.0.1:7000 --to 3 --port 2001 'probe'";

const STATS_HELP: &str = "\
Asks station --to's Reporter (port 2) over the bus for its statistics and prints every counter \
(frames, deliveries, ACKs, resends, dead-letters, bulk, streams, traces...) and the progress \
of its outbound bulk transfers. --json prints one JSON object.

Examples:
  tamtam stats --connect 127.0.0.1:7000 --to 2
  tamtam stats --connect 127.0.0.1:7000 --to 3 --json";

#[derive(Subcommand)]
enum Command {
    /// Start two stations on loopback and show the fast, bulk and stream lanes working, a
    /// traced packet's route and the Reporter's statistics. Exits 0 when every check passed.
    Demo {
        /// Size of the generated file sent over the bulk lane, in MiB.
        #[arg(long, default_value_t = 64)]
        file_mib: u64,
        /// Stream frames to send.
        #[arg(long, default_value_t = 200)]
        frames: u32,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Measure TamTam on this machine: every scenario (fast-lane latency and throughput,
    /// fan-out, bulk, streams, scale) beside raw baselines measured in the same run, with
    /// ratios and targets. Prints a table and `RESULT <key> <value> <unit>` lines.
    Bench {
        /// Every scenario in under a minute (fewer samples, shorter windows).
        #[arg(long)]
        quick: bool,
        /// Tiny sizes, only to prove every scenario works.
        #[arg(long, hide = true)]
        smoke: bool,
        /// Print the results as JSON instead of the table and RESULT lines.
        #[arg(long)]
        json: bool,
        /// Run only this scenario: raw, fast-rtt, fast-tput, shm, fanout, bulk, stream, scale.
        #[arg(long)]
        scenario: Option<String>,
    },
    /// Run a station from a TOML file and/or flags until Ctrl-C or SIGTERM.
    #[command(long_about = STATION_HELP)]
    Station(StationArgs),
    /// Send one message (ACK awaited), a request (reply printed) or a file (bulk lane).
    #[command(long_about = SEND_HELP)]
    Send(SendArgs),
    /// Join the bus, serve ports and print what arrives.
    #[command(long_about = LISTEN_HELP)]
    Listen(ListenArgs),
    /// Send a traced message and show its route hop by hop.
    #[command(long_about = TRACE_HELP)]
    Trace(TraceArgs),
    /// Print a station's statistics, asked of its Reporter over the bus.
    #[command(long_about = STATS_HELP)]
    Stats(StatsArgs),
}

fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    config::parse_addr(value)
}

fn parse_seconds(value: &str) -> Result<Duration, String> {
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("expected seconds in (0, 86400], not \"{value}\"")),
    }
}

fn parse_outbox(value: &str) -> Result<config::OutboxSetting, String> {
    Ok(match value {
        "" | "true" => config::OutboxSetting::Enabled(true),
        "false" => config::OutboxSetting::Enabled(false),
        path => config::OutboxSetting::Path(PathBuf::from(path)),
    })
}

#[derive(Args)]
struct StationArgs {
    /// Station id (same as --id).
    #[arg(value_name = "ID", conflicts_with = "id")]
    id_positional: Option<u32>,
    /// Read settings from this TOML file (flags override its keys).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Station id, 1 or more (file key: id).
    #[arg(long, value_name = "N")]
    id: Option<u32>,
    /// Name of the station's thread (file key: name).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Shard threads, 1 to 64 (file key: cores).
    #[arg(long, value_name = "N")]
    cores: Option<usize>,
    /// Listen for TCP links on ADDR; port 0 picks a free one. Repeatable (file: listen_tcp).
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    listen_tcp: Vec<SocketAddr>,
    /// Link to a station over TCP, reconnecting when it drops. Repeatable (file: connect_tcp).
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    connect_tcp: Vec<SocketAddr>,
    /// Bind a UDP socket on ADDR (file: bind_udp).
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    bind_udp: Option<SocketAddr>,
    /// Link to a station over UDP. Repeatable (file: udp_peers).
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    udp_peer: Vec<SocketAddr>,
    /// Where inbound bulk objects land (file: spool_dir).
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,
    /// Journal ACK-required messages so they survive a crash: alone, in the spool directory;
    /// with =FILE, there (file: durable_outbox).
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_outbox)]
    durable_outbox: Option<config::OutboxSetting>,
    /// Answer messages on PORT with their own payload. Repeatable (file: echo).
    #[arg(long, value_name = "PORT")]
    echo: Vec<u16>,
    /// Print messages and files arriving on PORT. Repeatable (file: sink).
    #[arg(long, value_name = "PORT")]
    sink: Vec<u16>,
    /// Join group PORT and print what is sent to it. Repeatable (file: join_group).
    #[arg(long, value_name = "PORT")]
    join_group: Vec<u16>,
    /// Subscribe to stream PORT and print its frames. Repeatable (file: subscribe).
    #[arg(long, value_name = "PORT")]
    subscribe: Vec<u16>,
    /// Collect trace reports (file: collect_traces).
    #[arg(long)]
    collect_traces: bool,
    /// Print arrivals as JSON lines.
    #[arg(long)]
    json: bool,
}

/// Flags every client command shares.
#[derive(Args)]
struct ClientArgs {
    /// A running station to link to over TCP. Repeatable.
    #[arg(long, value_name = "ADDR", required = true, value_parser = parse_addr)]
    connect: Vec<SocketAddr>,
    /// This command's own station id (default: random, 14680064 or more).
    #[arg(long, value_name = "N")]
    id: Option<u32>,
    /// Bound, in seconds, of each wait: connecting, finding the destination, the ACK or reply
    /// (for --bulk: the longest time without progress).
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    timeout: Duration,
}

impl ClientArgs {
    fn options(&self) -> client::ClientOptions {
        client::ClientOptions {
            connect: self.connect.clone(),
            id: self.id,
            timeout: self.timeout,
        }
    }
}

#[derive(Args)]
struct SendArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Destination station (default: any station serving --port).
    #[arg(long, value_name = "STATION")]
    to: Option<u32>,
    /// Destination port.
    #[arg(long, value_name = "PORT")]
    port: u16,
    /// Send the contents of FILE as the message (fast lane, up to 1 MiB).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["message", "bulk"])]
    file: Option<PathBuf>,
    /// Wait for the reply and print it.
    #[arg(long, conflicts_with = "bulk")]
    request: bool,
    /// Send FILE over the bulk lane (needs --to), with a progress bar.
    #[arg(long, value_name = "FILE", conflicts_with = "message")]
    bulk: Option<PathBuf>,
    /// No confirmation line and no progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// The message (default: standard input).
    message: Option<String>,
}

#[derive(Args)]
struct ListenArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Serve PORT and print what arrives. Repeatable.
    #[arg(long, value_name = "PORT")]
    port: Vec<u16>,
    /// Subscribe to stream PORT and print its frames. Repeatable.
    #[arg(long, value_name = "PORT")]
    subscribe: Vec<u16>,
    /// Join group PORT and print what is sent to it. Repeatable.
    #[arg(long, value_name = "PORT")]
    group: Vec<u16>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Exit after N arrivals.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

#[derive(Args)]
struct TraceArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Destination station.
    #[arg(long, value_name = "STATION")]
    to: u32,
    /// Destination port (default: 2, the Reporter).
    #[arg(long, value_name = "PORT", default_value_t = tamtam_engine::core::registry::REPORTER)]
    port: u16,
    /// The traced message's payload.
    #[arg(default_value = "trace")]
    message: String,
}

#[derive(Args)]
struct StatsArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The station asked.
    #[arg(long, value_name = "STATION")]
    to: u32,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

fn run_station(args: StationArgs) -> Result<(), String> {
    let file = match &args.config {
        Some(path) => Some(config::read_file(path)?),
        None => None,
    };
    let overrides = config::Overrides {
        id: args.id.or(args.id_positional),
        name: args.name,
        cores: args.cores,
        listen_tcp: args.listen_tcp,
        connect_tcp: args.connect_tcp,
        bind_udp: args.bind_udp,
        udp_peers: args.udp_peer,
        spool_dir: args.spool_dir,
        durable_outbox: args.durable_outbox,
        echo: args.echo,
        sink: args.sink,
        join_group: args.join_group,
        subscribe: args.subscribe,
        collect_traces: args.collect_traces,
    };
    let settings = match (&args.config, file) {
        (Some(path), Some((parsed, text))) => {
            config::resolve(Some((path.as_path(), parsed, &text)), overrides)?
        }
        _ => config::resolve(None, overrides)?,
    };
    station::run(&settings, args.json)
}

/// Exit status for usage errors (as clap's own).
const USAGE: u8 = 2;

fn main() -> ExitCode {
    // `tamtam bench` re-executes this binary for its child processes.
    if let Some(code) = tamtam_bench::child_main() {
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || matches!(
                    e.kind(),
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                )
            {
                let _ = e.print();
                return ExitCode::from(if e.exit_code() == 0 { 0 } else { USAGE });
            }
            // One line: clap's first paragraph (the verdict and, for missing arguments, the
            // indented list of them), without its "error: " prefix.
            let rendered = e.render().to_string();
            let verdict: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let verdict = verdict.join(" ");
            let verdict = verdict.strip_prefix("error: ").unwrap_or(&verdict);
            eprintln!("tamtam: {verdict} (see tamtam --help)");
            return ExitCode::from(USAGE);
        }
    };
    let result = match cli.command {
        Command::Demo {
            file_mib,
            frames,
            quiet,
        } => demo::run(&demo::Options {
            file_mib,
            frames,
            quiet,
        }),
        Command::Bench {
            quick,
            smoke,
            json,
            scenario,
        } => {
            let profile = if smoke {
                tamtam_bench::Profile::Smoke
            } else if quick {
                tamtam_bench::Profile::Quick
            } else {
                tamtam_bench::Profile::Full
            };
            tamtam_bench::run(&tamtam_bench::Options {
                profile,
                scenario,
                json,
            })
            .map(|_| ())
        }
        Command::Station(args) => run_station(args),
        Command::Send(args) => client::send(&client::SendOptions {
            client: args.client.options(),
            to: args.to,
            port: args.port,
            body: match (args.message, args.file) {
                (Some(text), _) => client::Body::Text(text),
                (None, Some(path)) => client::Body::File(path),
                (None, None) => client::Body::Stdin,
            },
            request: args.request,
            bulk: args.bulk,
            quiet: args.quiet,
        }),
        Command::Listen(args) => client::listen(&client::ListenOptions {
            client: args.client.options(),
            ports: args.port,
            subscribe: args.subscribe,
            groups: args.group,
            json: args.json,
            count: args.count,
        }),
        Command::Trace(args) => client::trace(&client::TraceOptions {
            client: args.client.options(),
            to: args.to,
            port: args.port,
            payload: args.message.into_bytes(),
        }),
        Command::Stats(args) => client::stats(&client::StatsOptions {
            client: args.client.options(),
            to: args.to,
            json: args.json,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tamtam: {message}");
            ExitCode::FAILURE
        }
    }
}
