//! `translation_bus`: run translation servers, an AI fallback server, a hub, or ask for a
//! translation. See `examples/translation_bus/README.md`.

use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use tamtam_engine::core::registry;
use tamtam_engine::driver::Station;
use translation_bus::backend::{LibreTranslate, Ollama};
use translation_bus::client::{AskEvent, AskOptions, Asker, AskerConfig};
use translation_bus::random_station_id;
use translation_bus::server::{Backend, ServerConfig, TranslationServer};

/// Distributed translation over TamTam: language ports served by LibreTranslate, with an
/// Ollama fallback that streams partial results.
#[derive(Parser)]
#[command(name = "translation_bus", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where a station sits on the bus.
#[derive(Args, Clone)]
struct Net {
    /// Station id, unique on the bus (default: derived from the process id and the clock).
    #[arg(long)]
    id: Option<u32>,
    /// Listen for other stations on this TCP address (repeatable).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// Connect to a station at this TCP address (repeatable).
    #[arg(
        long,
        value_name = "ADDR",
        env = "TRANSLATION_BUS_CONNECT",
        value_delimiter = ','
    )]
    connect: Vec<SocketAddr>,
}

#[derive(Args, Clone)]
struct Work {
    /// Worker threads, i.e. concurrent HTTP calls.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Requests queued for the workers at most; more are answered "server busy".
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Give up an HTTP call after this many seconds.
    #[arg(long, default_value_t = 120)]
    http_timeout: u64,
}

#[derive(Subcommand)]
enum Command {
    /// A station that only connects others (start it first; everyone --connect's to it).
    Hub {
        #[command(flatten)]
        net: Net,
    },
    /// Serve language ports with a LibreTranslate server.
    Server {
        /// Target language code to serve (ISO 639-1, repeatable): `de` serves port 102.
        #[arg(long = "lang", required = true, value_name = "CODE")]
        langs: Vec<String>,
        /// Base URL of the LibreTranslate server.
        #[arg(long, env = "LIBRETRANSLATE_URL", value_name = "URL")]
        libretranslate: String,
        /// LibreTranslate API key, if the server requires one.
        #[arg(long, env = "LIBRETRANSLATE_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        #[command(flatten)]
        net: Net,
        #[command(flatten)]
        work: Work,
    },
    /// Serve an AI port (the fallback for unserved languages) with an Ollama model.
    Ai {
        /// Base URL of the Ollama server.
        #[arg(long, env = "OLLAMA_URL", value_name = "URL")]
        ollama: String,
        /// The model to run.
        #[arg(long, env = "OLLAMA_MODEL")]
        model: String,
        /// The AI port to serve (1001 is the fallback of every language port).
        #[arg(long, default_value_t = registry::AI_TRANSLATE)]
        port: u16,
        #[command(flatten)]
        net: Net,
        #[command(flatten)]
        work: Work,
    },
    /// Translate a text (from the argument, or stdin) and print the result; partial results
    /// of an AI server are printed as they arrive.
    Ask {
        /// Target language code (ISO 639-1).
        #[arg(long)]
        to_lang: String,
        /// Source language code, or `auto`.
        #[arg(long, default_value = "auto")]
        from_lang: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Wait at most this many milliseconds for a server of the language to be
        /// discovered; if none appears, wait (at least 3 s) for an AI server and let the
        /// request fall back to it.
        #[arg(long, default_value_t = 3000)]
        discover_ms: u64,
        /// Print which station served the request (to stderr).
        #[arg(long, short)]
        verbose: bool,
        #[command(flatten)]
        net: Net,
        /// The text (default: read stdin).
        text: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("translation_bus: {message}");
            ExitCode::FAILURE
        }
    }
}

fn station_id(net: &Net) -> Result<u32, String> {
    match net.id {
        Some(0) => Err("--id 0 is reserved; use 1 or more".into()),
        Some(id) => Ok(id),
        None => Ok(random_station_id()),
    }
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Hub { net } => {
            let id = station_id(&net)?;
            let mut builder = Station::builder()
                .id(id)
                .name("translation-hub")
                .spool_dir(std::env::temp_dir().join(format!("translation_bus-{id}")));
            for &addr in &net.listen {
                builder = builder.listen_tcp(addr);
            }
            for &addr in &net.connect {
                builder = builder.connect_tcp(addr);
            }
            let station = builder.build().map_err(|e| e.to_string())?;
            println!(
                "translation_bus: hub station {id} listening on {:?}",
                station.local_addrs()
            );
            let _ = std::io::stdout().flush();
            loop {
                std::thread::park();
            }
        }
        Command::Server {
            langs,
            libretranslate,
            api_key,
            net,
            work,
        } => {
            let mut ports = Vec::new();
            for code in &langs {
                let port = registry::language_port(code).ok_or_else(|| {
                    format!(
                        "unknown language code {code:?} (see spec/registry/LanguagePorts-v1.md)"
                    )
                })?;
                ports.push(port);
            }
            check_url(&libretranslate, "--libretranslate")?;
            let backend = Backend::LibreTranslate(LibreTranslate::new(
                &libretranslate,
                api_key,
                Duration::from_secs(work.http_timeout.max(1)),
            ));
            serve(
                ports,
                backend,
                &net,
                &work,
                &format!("libretranslate at {libretranslate}"),
            )
        }
        Command::Ai {
            ollama,
            model,
            port,
            net,
            work,
        } => {
            check_url(&ollama, "--ollama")?;
            let backend = Backend::Ollama(Ollama::new(
                &ollama,
                &model,
                Duration::from_secs(work.http_timeout.max(1)),
            ));
            serve(
                vec![port],
                backend,
                &net,
                &work,
                &format!("ollama at {ollama}, model {model}"),
            )
        }
        Command::Ask {
            to_lang,
            from_lang,
            timeout,
            discover_ms,
            verbose,
            net,
            text,
        } => {
            let port = registry::language_port(&to_lang).ok_or_else(|| {
                format!("unknown language code {to_lang:?} (see spec/registry/LanguagePorts-v1.md)")
            })?;
            if net.connect.is_empty() {
                return Err("ask needs --connect ADDR (a hub or a server)".into());
            }
            let text = match text {
                Some(text) => text,
                None => {
                    if std::io::stdin().is_terminal() {
                        eprintln!("(reading the text from stdin; end with Ctrl-D)");
                    }
                    let mut text = String::new();
                    std::io::stdin()
                        .take(translation_bus::protocol::TEXT_LEN_MAX as u64 + 1)
                        .read_to_string(&mut text)
                        .map_err(|e| format!("cannot read stdin: {e}"))?;
                    // `echo text |` ends with a newline that is not part of the text.
                    text.truncate(text.trim_end_matches(['\n', '\r']).len());
                    text
                }
            };
            let asker = Asker::start(AskerConfig {
                station_id: station_id(&net)?,
                listen: net.listen.clone(),
                connect: net.connect.clone(),
                spool_dir: None,
            })
            .map_err(|e| e.to_string())?;
            // Discovery: wait for a server of the language. Without one, the request goes to
            // the AI fallback, so then wait until an AI server is known.
            let known = |port: u16| -> Result<bool, String> {
                let peers = asker.station().peers().map_err(|e| e.to_string())?;
                Ok(peers.iter().any(|(_, ports)| ports.contains(&port)))
            };
            let discover = Duration::from_millis(discover_ms);
            let mut until = Instant::now() + discover;
            let mut wanted = port;
            loop {
                if known(wanted)? {
                    break;
                }
                if Instant::now() >= until {
                    if wanted == registry::AI_TRANSLATE {
                        break;
                    }
                    // Without an AI server the request fails, so this wait is never wasted:
                    // it ends as soon as one is known.
                    wanted = registry::AI_TRANSLATE;
                    until = Instant::now() + discover.max(Duration::from_secs(3));
                    continue;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let options = AskOptions {
                source: from_lang,
                timeout: Duration::from_secs(timeout.max(1)),
                ..AskOptions::default()
            };
            let mut out = std::io::stdout().lock();
            let mut streamed = false;
            let answer = asker
                .ask(&to_lang, &text, &options, |event| match event {
                    AskEvent::Accepted { server, port } => {
                        if verbose {
                            eprintln!(
                                "translation_bus: station {server} took the request on port {port}"
                            );
                        }
                    }
                    AskEvent::Partial(piece) => {
                        streamed = true;
                        let _ = out.write_all(piece.as_bytes());
                        let _ = out.flush();
                    }
                    AskEvent::Restarted { lost } => {
                        if streamed {
                            let _ = writeln!(out);
                            streamed = false;
                        }
                        match lost {
                            Some(server) => {
                                eprintln!("translation_bus: server {server} lost; asking again")
                            }
                            None => eprintln!(
                                "translation_bus: no server took the request in time; asking again"
                            ),
                        }
                    }
                })
                .map_err(|e| e.to_string())?;
            if !streamed {
                let _ = out.write_all(answer.text.as_bytes());
            }
            let _ = writeln!(out);
            let _ = out.flush();
            if verbose {
                eprintln!(
                    "translation_bus: answered by station {} on port {} after {} attempt(s), {} partial(s)",
                    answer.server, answer.port, answer.attempts, answer.partials
                );
            }
            Ok(())
        }
    }
}

fn check_url(url: &str, flag: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!(
            "{flag} must be an http:// or https:// URL, not {url:?}"
        ))
    }
}

fn serve(
    ports: Vec<u16>,
    backend: Backend,
    net: &Net,
    work: &Work,
    what: &str,
) -> Result<(), String> {
    let id = station_id(net)?;
    let server = TranslationServer::start(ServerConfig {
        station_id: id,
        ports: ports.clone(),
        backend,
        listen: net.listen.clone(),
        connect: net.connect.clone(),
        workers: work.workers,
        queue: work.queue,
        spool_dir: None,
    })
    .map_err(|e| e.to_string())?;
    let named: Vec<String> = ports
        .iter()
        .map(|&p| match registry::language_of_port(p) {
            Some(l) => format!("{p} ({})", l.code),
            None => p.to_string(),
        })
        .collect();
    println!(
        "translation_bus: station {id} serves port {} with {what}; listening on {:?}",
        named.join(", "),
        server.station().local_addrs()
    );
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}
