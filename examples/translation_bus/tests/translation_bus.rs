//! Goal: the translation bus works end to end over real sockets and real HTTP.
//! Method: fake LibreTranslate and Ollama servers (`fake`, real HTTP/1.1 on 127.0.0.1:0)
//! stand behind translation servers; clients ask through the bus. Tests about one component
//! run stations in this process; tests about process death run the `translation_bus`
//! binary as child processes and kill them with SIGKILL. Every wait has a deadline; fake
//! servers are held back with gates the test opens, never with sleeps.

mod fake;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake::{FakeLibre, FakeOllama, LibreMode, dead_url, libre_translation};
use tamtam_engine::core::registry::{AI_TRANSLATE, language_port};
use translation_bus::backend::{LibreTranslate, Ollama};
use translation_bus::client::{AskError, AskEvent, AskOptions, Asker, AskerConfig};
use translation_bus::server::{Backend, ServerConfig, TranslationServer};

const WAIT: Duration = Duration::from_secs(30);
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

fn spool(id: u32) -> PathBuf {
    std::env::temp_dir().join(format!("translation_bus-test-{}-{id}", std::process::id()))
}

/// A client station listening on loopback (servers connect to it).
fn asker(id: u32) -> Asker {
    Asker::start(AskerConfig {
        station_id: id,
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        connect: Vec::new(),
        spool_dir: Some(spool(id)),
    })
    .expect("start the client station")
}

fn address(asker: &Asker) -> SocketAddr {
    asker.station().local_addrs()[0]
}

fn libre_server(id: u32, langs: &[&str], url: &str, connect: SocketAddr) -> TranslationServer {
    TranslationServer::start(ServerConfig {
        station_id: id,
        ports: langs.iter().map(|l| language_port(l).unwrap()).collect(),
        backend: Backend::LibreTranslate(LibreTranslate::new(url, None, HTTP_TIMEOUT)),
        listen: Vec::new(),
        connect: vec![connect],
        workers: 4,
        queue: 64,
        spool_dir: Some(spool(id)),
    })
    .expect("start a LibreTranslate server")
}

fn ai_server(id: u32, url: &str, connect: SocketAddr) -> TranslationServer {
    TranslationServer::start(ServerConfig {
        station_id: id,
        ports: vec![AI_TRANSLATE],
        backend: Backend::Ollama(Ollama::new(url, "fake-model", HTTP_TIMEOUT)),
        listen: Vec::new(),
        connect: vec![connect],
        workers: 2,
        queue: 16,
        spool_dir: Some(spool(id)),
    })
    .expect("start an AI server")
}

fn options() -> AskOptions {
    AskOptions {
        timeout: WAIT,
        ..AskOptions::default()
    }
}

fn cleanup(ids: &[u32]) {
    for &id in ids {
        let _ = std::fs::remove_dir_all(spool(id));
        // Where the binary's stations spool by default.
        let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("translation_bus-{id}")));
    }
}

#[test]
fn a_language_port_is_served_by_libretranslate() {
    let libre = FakeLibre::start(LibreMode::Translate, false);
    let client = asker(100);
    let server = libre_server(101, &["de"], &libre.url, address(&client));
    client.wait_for_servers(102, 1, WAIT).unwrap();
    let mut accepted = Vec::new();
    let answer = client
        .ask("de", "Good morning", &options(), |e| {
            if let AskEvent::Accepted { server, port } = e {
                accepted.push((server, port));
            }
        })
        .unwrap();
    assert_eq!(answer.text, libre_translation("de", "Good morning"));
    assert_eq!((answer.server, answer.port), (101, 102));
    assert_eq!(accepted, vec![(101, 102)]);
    assert_eq!((answer.partials, answer.attempts), (0, 1));
    let sent = libre.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["q"], "Good morning");
    assert_eq!(sent[0]["source"], "auto");
    assert_eq!(sent[0]["target"], "de");
    assert_eq!(sent[0]["format"], "text");
    // A language nobody serves, with no AI server either: a clear error, at once.
    let started = Instant::now();
    let error = client.ask("cs", "Hi", &options(), |_| {}).unwrap_err();
    assert!(
        matches!(error, AskError::NoServer { port: 150, .. }),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(
        client.ask("xx", "Hi", &options(), |_| {}),
        Err(AskError::UnknownLanguage(_))
    ));
    server.shutdown();
    cleanup(&[100, 101]);
}

#[test]
fn two_servers_of_one_language_share_the_work() {
    let libre = FakeLibre::start(LibreMode::Translate, false);
    let client = asker(110);
    let a = libre_server(111, &["de"], &libre.url, address(&client));
    let b = libre_server(112, &["de"], &libre.url, address(&client));
    client.wait_for_servers(102, 2, WAIT).unwrap();
    let per_server: Mutex<[usize; 2]> = Mutex::new([0, 0]);
    const THREADS: usize = 4;
    const EACH: usize = 10;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (client, per_server) = (&client, &per_server);
            s.spawn(move || {
                for i in 0..EACH {
                    let text = format!("sentence {t}-{i}");
                    let answer = client.ask("de", &text, &options(), |_| {}).unwrap();
                    assert_eq!(answer.text, libre_translation("de", &text));
                    per_server.lock().unwrap()[(answer.server - 111) as usize] += 1;
                }
            });
        }
    });
    let counts = *per_server.lock().unwrap();
    eprintln!(
        "requests per server: 111 -> {}, 112 -> {}",
        counts[0], counts[1]
    );
    assert_eq!(counts[0] + counts[1], THREADS * EACH);
    // Ties between equally loaded servers are broken at random: with 40 requests, fewer
    // than 5 on one side happens about once in ten million runs.
    assert!(counts[0] >= 5 && counts[1] >= 5, "{counts:?}");
    assert_eq!(libre.calls(), THREADS * EACH);
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(a.counters().done.load(Relaxed) as usize, counts[0]);
    assert_eq!(b.counters().done.load(Relaxed) as usize, counts[1]);
    a.shutdown();
    b.shutdown();
    cleanup(&[110, 111, 112]);
}

#[test]
fn unserved_language_falls_back_to_ai_and_streams_partials_as_they_come() {
    let chunks = ["Bon", "jour", " le", " monde"];
    let ollama = FakeOllama::start(&chunks);
    let libre = FakeLibre::start(LibreMode::Translate, false);
    let client = asker(120);
    let de = libre_server(121, &["de"], &libre.url, address(&client));
    let ai = ai_server(122, &ollama.url, address(&client));
    client.wait_for_servers(102, 1, WAIT).unwrap();
    client.wait_for_servers(AI_TRANSLATE, 1, WAIT).unwrap();
    // French (port 234) has no server: the request lands on the AI port.
    let (events_tx, events) = channel::<String>();
    let asking = std::thread::scope(|s| {
        let asking = s.spawn(|| {
            client.ask("fr", "Hello world", &options(), move |e| {
                let line = match e {
                    AskEvent::Accepted { server, port } => format!("accepted {server} {port}"),
                    AskEvent::Partial(text) => format!("partial {text}"),
                    AskEvent::Restarted { lost } => format!("restarted {lost:?}"),
                };
                let _ = events_tx.send(line);
            })
        });
        let next = |events: &Receiver<String>| events.recv_timeout(WAIT).expect("an event");
        assert_eq!(next(&events), "accepted 122 1001");
        for (i, chunk) in chunks.iter().enumerate() {
            // Let exactly one more NDJSON line out; its partial must arrive before the next
            // one is even written: the result is streamed, not collected.
            ollama.gate.release(1);
            assert_eq!(next(&events), format!("partial {chunk}"));
            assert_eq!(ollama.written(), i + 1);
        }
        ollama.gate.release(1); // The `done` line.
        asking.join().unwrap()
    });
    let answer = asking.unwrap();
    assert_eq!(answer.text, chunks.concat());
    assert_eq!(
        (answer.server, answer.port, answer.partials),
        (122, 1001, 4)
    );
    let sent = ollama.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["model"], "fake-model");
    assert_eq!(sent[0]["stream"], true);
    let prompt = sent[0]["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("French (fr)") && prompt.ends_with("Hello world"),
        "{prompt}"
    );
    // The served language still goes to LibreTranslate, not to the AI.
    let answer = client.ask("de", "Hello", &options(), |_| {}).unwrap();
    assert_eq!((answer.server, answer.port), (121, 102));
    assert_eq!(libre.calls(), 1);
    de.shutdown();
    ai.shutdown();
    cleanup(&[120, 121, 122]);
}

#[test]
fn backend_down_or_failing_is_a_clear_error_not_a_hang() {
    let failing = FakeLibre::start(LibreMode::Fail, false);
    let client = asker(130);
    let down = libre_server(131, &["de"], &dead_url(), address(&client));
    let broken = libre_server(132, &["es"], &failing.url, address(&client));
    let ai_down = ai_server(133, &dead_url(), address(&client));
    for port in [102, 103, AI_TRANSLATE] {
        client.wait_for_servers(port, 1, WAIT).unwrap();
    }
    let started = Instant::now();
    let expect_failure = |lang: &str, server: u32, words: &[&str]| match client.ask(
        lang,
        "Hello",
        &options(),
        |_| {},
    ) {
        Err(AskError::Failed {
            server: got,
            message,
        }) => {
            assert_eq!(got, server);
            for word in words {
                assert!(message.contains(word), "{message:?} lacks {word:?}");
            }
        }
        other => panic!("{lang}: expected a failure from {server}, got {other:?}"),
    };
    expect_failure("de", 131, &["libretranslate", "unreachable"]);
    expect_failure("es", 132, &["libretranslate", "HTTP 500", "model exploded"]);
    expect_failure("fr", 133, &["ollama", "unreachable"]); // via the AI fallback
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(failing.calls(), 1);
    for server in [down, broken, ai_down] {
        server.shutdown();
    }
    cleanup(&[130, 131, 132, 133]);
}

/// A `translation_bus` child process; killed when dropped.
struct Process {
    child: Child,
    lines: Receiver<String>,
}

impl Process {
    fn start(args: &[&str]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_translation_bus"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn translation_bus");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process { child, lines }
    }

    /// Waits for the start-up line (it contains `listening on [..]`) and returns it.
    fn started(&mut self) -> String {
        let line = self.lines.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!("no start-up line; exit status {:?}", self.child.try_wait())
        });
        assert!(line.contains("listening on"), "{line}");
        line
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn a_killed_server_process_loses_no_request() {
    killed_server_scenario(None, [140, 141, 142]);
}

#[test]
fn a_killed_server_process_behind_a_hub_loses_no_request() {
    // The client and the servers meet at a hub process: the client learns of the death
    // from the hub's new advert, not from a link of its own closing.
    let mut hub = Process::start(&["hub", "--listen", "127.0.0.1:0", "--id", "163"]);
    let hub_addr = listening_address(&hub.started());
    killed_server_scenario(Some(hub_addr), [160, 161, 162]);
    hub.kill();
    cleanup(&[163]);
}

fn listening_address(line: &str) -> String {
    line.split('[')
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("a listening address")
        .to_string()
}

/// Two server processes serve `de`; the fake LibreTranslate holds every call until all
/// requests sit at a server; then the first server is killed with SIGKILL. Every request
/// must still be answered, those it held by the second server.
fn killed_server_scenario(hub: Option<String>, ids: [u32; 3]) {
    let [client_id, killed, survivor] = ids;
    let libre = FakeLibre::start(LibreMode::Translate, true);
    let gate = libre.gate.clone().unwrap();
    let client = match &hub {
        Some(hub) => Asker::start(AskerConfig {
            station_id: client_id,
            listen: Vec::new(),
            connect: vec![hub.parse().unwrap()],
            spool_dir: Some(spool(client_id)),
        })
        .unwrap(),
        None => asker(client_id),
    };
    let connect = hub.clone().unwrap_or_else(|| address(&client).to_string());
    let mut servers: Vec<Process> = [killed.to_string(), survivor.to_string()]
        .iter()
        .map(|id| {
            let args = [
                "server",
                "--lang",
                "de",
                "--libretranslate",
                &libre.url,
                "--connect",
                &connect,
                "--id",
                id,
                "--workers",
                "2",
            ];
            Process::start(&args)
        })
        .collect();
    for server in &mut servers {
        server.started();
    }
    client.wait_for_servers(102, 2, WAIT).unwrap();
    const REQUESTS: usize = 16;
    // Every acceptance, in order: (request, server).
    let accepted: Arc<Mutex<Vec<(usize, u32)>>> = Arc::default();
    let answers = std::thread::scope(|s| {
        let asks: Vec<_> = (0..REQUESTS)
            .map(|i| {
                let (client, accepted) = (&client, accepted.clone());
                s.spawn(move || {
                    let text = format!("request {i}");
                    let answer = client.ask("de", &text, &options(), |e| {
                        if let AskEvent::Accepted { server, .. } = e {
                            accepted.lock().unwrap().push((i, server));
                        }
                    });
                    (text, answer)
                })
            })
            .collect();
        // The fake LibreTranslate holds every call: wait until every request sits at a
        // server, then kill one server with its requests still unanswered.
        let deadline = Instant::now() + WAIT;
        while accepted.lock().unwrap().len() < REQUESTS {
            assert!(Instant::now() < deadline, "requests not all accepted");
            std::thread::sleep(Duration::from_millis(5));
        }
        servers[0].kill();
        gate.release(10 * REQUESTS);
        asks.into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    let accepted = accepted.lock().unwrap().clone();
    let held_by_killed: Vec<usize> = accepted[..REQUESTS]
        .iter()
        .filter(|(_, server)| *server == killed)
        .map(|(i, _)| *i)
        .collect();
    let first_counts = [held_by_killed.len(), REQUESTS - held_by_killed.len()];
    eprintln!(
        "requests first taken: {killed} -> {}, {survivor} -> {}",
        first_counts[0], first_counts[1]
    );
    // Both servers got work before the kill (spreading), ...
    assert!(
        first_counts[0] > 0 && first_counts[1] > 0,
        "{first_counts:?}"
    );
    // ... and every request was answered, those of the killed server by the survivor.
    for (i, (text, answer)) in answers.into_iter().enumerate() {
        let answer = answer.unwrap_or_else(|e| panic!("request {i} lost: {e}"));
        assert_eq!(answer.text, libre_translation("de", &text));
        assert_eq!(answer.server, survivor, "request {i}");
        let expected_attempts = if held_by_killed.contains(&i) { 2 } else { 1 };
        assert_eq!(answer.attempts, expected_attempts, "request {i}");
    }
    assert_eq!(client.restarts() as usize, held_by_killed.len());
    cleanup(&ids);
}

#[test]
fn the_command_line_session_of_the_readme_works() {
    let libre = FakeLibre::start(LibreMode::Translate, false);
    let ollama = FakeOllama::start(&["Bon", "jour"]);
    ollama.gate.release(100);
    let mut hub = Process::start(&["hub", "--listen", "127.0.0.1:0", "--id", "150"]);
    let hub_addr = listening_address(&hub.started());
    let mut de = Process::start(&[
        "server",
        "--lang",
        "de",
        "--libretranslate",
        &libre.url,
        "--connect",
        &hub_addr,
        "--id",
        "151",
    ]);
    de.started();
    let mut ai = Process::start(&[
        "ai",
        "--ollama",
        &ollama.url,
        "--model",
        "fake",
        "--connect",
        &hub_addr,
        "--id",
        "152",
    ]);
    ai.started();
    let ask = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_translation_bus"))
            .args(args)
            .output()
            .expect("run translation_bus ask");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, out, err) = ask(&["ask", "--to-lang", "de", "--connect", &hub_addr, "Hello"]);
    assert_eq!((code, out.as_str()), (Some(0), "[de] HELLO\n"), "{err}");
    let (code, out, err) = ask(&[
        "ask",
        "--to-lang",
        "fr",
        "--connect",
        &hub_addr,
        "--discover-ms",
        "300",
        "-v",
        "Hello",
    ]);
    assert_eq!((code, out.as_str()), (Some(0), "Bonjour\n"), "{err}");
    assert!(err.contains("on port 1001"), "{err}");
    // Bad input: one clear line and a non-zero exit.
    let (code, out, err) = ask(&["ask", "--to-lang", "zz", "--connect", &hub_addr, "Hi"]);
    assert_eq!((code, out.as_str()), (Some(1), ""));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown language code \"zz\""), "{err}");
    cleanup(&[150, 151, 152]);
}

/// Against real LibreTranslate and Ollama servers, named by `LIBRETRANSLATE_URL`,
/// `OLLAMA_URL` and `OLLAMA_MODEL` (see the README for the command). Ignored by default: CI
/// has no such servers.
#[test]
#[ignore = "needs real LibreTranslate and Ollama servers"]
fn live_services() {
    let env = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("set {name} to run the live test"))
    };
    let (libre_url, ollama_url, model) = (
        env("LIBRETRANSLATE_URL"),
        env("OLLAMA_URL"),
        env("OLLAMA_MODEL"),
    );
    let client = asker(170);
    let de = libre_server(171, &["de"], &libre_url, address(&client));
    let ai = TranslationServer::start(ServerConfig {
        station_id: 172,
        ports: vec![AI_TRANSLATE],
        backend: Backend::Ollama(Ollama::new(&ollama_url, &model, Duration::from_secs(300))),
        listen: Vec::new(),
        connect: vec![address(&client)],
        workers: 1,
        queue: 4,
        spool_dir: Some(spool(172)),
    })
    .unwrap();
    client.wait_for_servers(102, 1, WAIT).unwrap();
    client.wait_for_servers(AI_TRANSLATE, 1, WAIT).unwrap();
    let options = AskOptions {
        source: "en".into(),
        timeout: Duration::from_secs(300),
        ..AskOptions::default()
    };
    let answer = client.ask("de", "Good morning", &options, |_| {}).unwrap();
    eprintln!(
        "de (LibreTranslate, station {}): {}",
        answer.server, answer.text
    );
    assert!(!answer.text.trim().is_empty());
    let mut pieces = Vec::new();
    let answer = client
        .ask("fr", "Good morning, how are you?", &options, |e| {
            if let AskEvent::Partial(piece) = e {
                pieces.push(piece.to_string());
            }
        })
        .unwrap();
    eprintln!("fr (Ollama, {} partials): {}", pieces.len(), answer.text);
    assert_eq!(answer.port, AI_TRANSLATE);
    assert_eq!(pieces.concat(), answer.text);
    assert!(pieces.len() > 1, "the answer was not streamed");
    de.shutdown();
    ai.shutdown();
    cleanup(&[170, 171, 172]);
}
