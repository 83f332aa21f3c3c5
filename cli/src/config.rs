//! The station's settings: a TOML file (`--config FILE`, see `cli/station.example.toml`)
//! merged with command-line flags. A flag overrides the file's value; a list given on the
//! command line (`--connect-tcp`, `--echo`, …) replaces the file's list.
//!
//! Every mistake is reported as one line naming the file, the line and the key.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// The station settings a TOML file may hold. Unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Station id (1 or more).
    pub id: Option<u32>,
    /// Thread name.
    pub name: Option<String>,
    /// Shard threads.
    pub cores: Option<usize>,
    /// TCP listen addresses.
    pub listen_tcp: Option<Vec<Spanned<String>>>,
    /// TCP peers to connect to.
    pub connect_tcp: Option<Vec<Spanned<String>>>,
    /// UDP bind address.
    pub bind_udp: Option<Spanned<String>>,
    /// UDP peers.
    pub udp_peers: Option<Vec<Spanned<String>>>,
    /// Spool directory for inbound bulk objects.
    pub spool_dir: Option<PathBuf>,
    /// `true` (journal in the spool directory), `false`, or a journal path.
    pub durable_outbox: Option<OutboxSetting>,
    /// Ports answered with their own payload.
    pub echo: Option<Vec<u16>>,
    /// Ports whose messages (and bulk objects) are printed.
    pub sink: Option<Vec<u16>>,
    /// Groups joined (messages printed).
    pub join_group: Option<Vec<u16>>,
    /// Stream ports subscribed (frames printed).
    pub subscribe: Option<Vec<u16>>,
    /// Whether the station collects trace reports.
    pub collect_traces: Option<bool>,
}

/// The `durable_outbox` key: a switch or a path.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OutboxSetting {
    /// On (journal at `<spool_dir>/outbox.journal`) or off.
    Enabled(bool),
    /// On, journal at this path.
    Path(PathBuf),
}

/// The flags of `tamtam station` that can override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--id` or the positional id.
    pub id: Option<u32>,
    /// `--name`.
    pub name: Option<String>,
    /// `--cores`.
    pub cores: Option<usize>,
    /// `--listen-tcp`.
    pub listen_tcp: Vec<SocketAddr>,
    /// `--connect-tcp`.
    pub connect_tcp: Vec<SocketAddr>,
    /// `--bind-udp`.
    pub bind_udp: Option<SocketAddr>,
    /// `--udp-peer`.
    pub udp_peers: Vec<SocketAddr>,
    /// `--spool-dir`.
    pub spool_dir: Option<PathBuf>,
    /// `--durable-outbox [FILE]`.
    pub durable_outbox: Option<OutboxSetting>,
    /// `--echo`.
    pub echo: Vec<u16>,
    /// `--sink`.
    pub sink: Vec<u16>,
    /// `--join-group`.
    pub join_group: Vec<u16>,
    /// `--subscribe`.
    pub subscribe: Vec<u16>,
    /// `--collect-traces`.
    pub collect_traces: bool,
}

/// The resolved settings of a station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Station id.
    pub id: u32,
    /// Thread name ("" for the default).
    pub name: String,
    /// Shard threads.
    pub cores: usize,
    /// TCP listen addresses.
    pub listen_tcp: Vec<SocketAddr>,
    /// TCP peers.
    pub connect_tcp: Vec<SocketAddr>,
    /// UDP bind address.
    pub bind_udp: Option<SocketAddr>,
    /// UDP peers.
    pub udp_peers: Vec<SocketAddr>,
    /// Spool directory (None: the engine's default).
    pub spool_dir: Option<PathBuf>,
    /// Durable outbox journal.
    pub durable_outbox: Option<PathBuf>,
    /// Echo ports.
    pub echo: Vec<u16>,
    /// Sink ports.
    pub sink: Vec<u16>,
    /// Groups.
    pub join_group: Vec<u16>,
    /// Stream ports.
    pub subscribe: Vec<u16>,
    /// Collect trace reports.
    pub collect_traces: bool,
}

/// Parses `value` as `HOST:PORT` (a literal address or a name resolved now).
pub fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !value.contains(':') {
        return Err(format!("bad address \"{value}\": expected HOST:PORT"));
    }
    match value.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("bad address \"{value}\": the name has no address")),
        Err(e) => Err(format!("bad address \"{value}\": {e}")),
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map(|head| head.matches('\n').count() + 1)
        .unwrap_or(1)
}

/// Reads and parses a station file; errors are one line naming the file and the line.
pub fn read_file(path: &Path) -> Result<(FileConfig, String), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let parsed = parse_text(&text).map_err(|e| format!("{}{e}", path.display()))?;
    Ok((parsed, text))
}

/// Parses the text of a station file; errors start with `:LINE: ` (or `: `).
pub fn parse_text(text: &str) -> Result<FileConfig, String> {
    toml::from_str::<FileConfig>(text).map_err(|e| {
        let message = e.message().trim().replace('\n', " ");
        match e.span() {
            Some(span) => format!(":{}: {message}", line_of(text, span.start)),
            None => format!(": {message}"),
        }
    })
}

fn addr_at(
    file: &Path,
    text: &str,
    key: &str,
    value: &Spanned<String>,
) -> Result<SocketAddr, String> {
    parse_addr(value.get_ref()).map_err(|e| {
        format!(
            "{}:{}: {key}: {e}",
            file.display(),
            line_of(text, value.span().start)
        )
    })
}

fn addrs_at(
    file: &Path,
    text: &str,
    key: &str,
    values: &Option<Vec<Spanned<String>>>,
) -> Result<Vec<SocketAddr>, String> {
    values
        .iter()
        .flatten()
        .map(|v| addr_at(file, text, key, v))
        .collect()
}

fn pick<T>(flag: Vec<T>, file: Vec<T>) -> Vec<T> {
    if flag.is_empty() { file } else { flag }
}

/// Merges a file (if any: its path, parsed contents and text) with the flags.
pub fn resolve(
    file: Option<(&Path, FileConfig, &str)>,
    flags: Overrides,
) -> Result<Settings, String> {
    let (path, config, text) = match file {
        Some((path, config, text)) => (path.to_path_buf(), config, text.to_owned()),
        None => (
            PathBuf::from("<flags>"),
            FileConfig::default(),
            String::new(),
        ),
    };
    let listen_tcp = addrs_at(&path, &text, "listen_tcp", &config.listen_tcp)?;
    let connect_tcp = addrs_at(&path, &text, "connect_tcp", &config.connect_tcp)?;
    let udp_peers = addrs_at(&path, &text, "udp_peers", &config.udp_peers)?;
    let bind_udp = match &config.bind_udp {
        Some(v) => Some(addr_at(&path, &text, "bind_udp", v)?),
        None => None,
    };
    let id = flags
        .id
        .or(config.id)
        .ok_or("no station id: give --id N (or ID) or `id = N` in the --config file".to_owned())?;
    if id == 0 {
        return Err("station id 0 is reserved; use 1 or more".into());
    }
    let cores = flags.cores.or(config.cores).unwrap_or(1);
    if !(1..=64).contains(&cores) {
        return Err(format!("cores must be in 1..=64, not {cores}"));
    }
    if cores > 1 && id >= 1 << 24 {
        return Err(format!(
            "a station on several cores needs an id below {}, not {id}",
            1u32 << 24
        ));
    }
    let spool_dir = flags.spool_dir.or(config.spool_dir);
    let durable_outbox = match flags.durable_outbox.or(config.durable_outbox) {
        None | Some(OutboxSetting::Enabled(false)) => None,
        Some(OutboxSetting::Path(path)) => Some(path),
        Some(OutboxSetting::Enabled(true)) => Some(
            spool_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join(format!("tamtam-spool-{id}")))
                .join("outbox.journal"),
        ),
    };
    let settings = Settings {
        id,
        name: flags.name.or(config.name).unwrap_or_default(),
        cores,
        listen_tcp: pick(flags.listen_tcp, listen_tcp),
        connect_tcp: pick(flags.connect_tcp, connect_tcp),
        bind_udp: flags.bind_udp.or(bind_udp),
        udp_peers: pick(flags.udp_peers, udp_peers),
        spool_dir,
        durable_outbox,
        echo: pick(flags.echo, config.echo.unwrap_or_default()),
        sink: pick(flags.sink, config.sink.unwrap_or_default()),
        join_group: pick(flags.join_group, config.join_group.unwrap_or_default()),
        subscribe: pick(flags.subscribe, config.subscribe.unwrap_or_default()),
        collect_traces: flags.collect_traces || config.collect_traces.unwrap_or(false),
    };
    let mut ports: Vec<u16> = settings
        .echo
        .iter()
        .chain(&settings.sink)
        .chain(&settings.join_group)
        .chain(&settings.subscribe)
        .copied()
        .collect();
    ports.sort_unstable();
    if let Some(pair) = ports.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!(
            "port {} is given twice (echo, sink, join_group and subscribe ports must differ)",
            pair[0]
        ));
    }
    if let Some(port) = ports
        .iter()
        .find(|&&p| p <= tamtam_engine::core::registry::MIDDLEWARE_LAST)
    {
        return Err(format!(
            "port {port} is a system or middleware port; serve 101 or above"
        ));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_text(text: &str, flags: Overrides) -> Result<Settings, String> {
        let path = Path::new("s.toml");
        let config = parse_text(text).map_err(|e| format!("s.toml{e}"))?;
        resolve(Some((path, config, text)), flags)
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../station.example.toml");
        let settings = resolve_text(text, Overrides::default()).expect("example");
        assert_eq!(settings.id, 2);
        assert_eq!(settings.listen_tcp, vec!["127.0.0.1:7000".parse().unwrap()]);
        assert_eq!(settings.echo, vec![2001]);
        assert_eq!(settings.sink, vec![2002]);
    }

    #[test]
    fn flags_override_the_file() {
        let text = "id = 2\nlisten_tcp = [\"127.0.0.1:7000\"]\necho = [2001]\ncores = 1\n";
        let flags = Overrides {
            id: Some(9),
            listen_tcp: vec!["127.0.0.1:9000".parse().unwrap()],
            cores: Some(2),
            ..Overrides::default()
        };
        let settings = resolve_text(text, flags).expect("merge");
        assert_eq!(settings.id, 9);
        assert_eq!(settings.cores, 2);
        assert_eq!(settings.listen_tcp, vec!["127.0.0.1:9000".parse().unwrap()]);
        assert_eq!(
            settings.echo,
            vec![2001],
            "the file's list stays when no flag"
        );
    }

    #[test]
    fn an_unknown_key_names_its_line() {
        let err = resolve_text("id = 2\n\nlisn_tcp = [\"x\"]\n", Overrides::default())
            .expect_err("unknown key");
        assert!(err.starts_with("s.toml:3: "), "{err}");
        assert!(err.contains("lisn_tcp"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }

    #[test]
    fn a_bad_address_names_its_key_and_line() {
        let err = resolve_text(
            "id = 2\nconnect_tcp = [\"127.0.0.1:7000\",\n  \"nonsense\"]\n",
            Overrides::default(),
        )
        .expect_err("bad address");
        assert!(err.starts_with("s.toml:3: connect_tcp: "), "{err}");
        assert!(err.contains("nonsense"), "{err}");
    }

    #[test]
    fn wrong_types_and_values_are_refused() {
        for (text, needle) in [
            ("id = \"two\"\n", "s.toml:1:"),
            ("id = 0\n", "reserved"),
            ("id = 2\ncores = 0\n", "cores"),
            ("id = 2\necho = [2001]\nsink = [2001]\n", "twice"),
            ("id = 2\nsink = [2]\n", "system"),
            ("id = 2\necho = [70000]\n", "s.toml:2:"),
            ("name = \"x\"\n", "no station id"),
            ("id = 2\nlisten_tcp = \"127.0.0.1:1\"\n", "s.toml:2:"),
        ] {
            let err = resolve_text(text, Overrides::default()).expect_err(text);
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn durable_outbox_true_lands_in_the_spool_dir() {
        let settings = resolve_text(
            "id = 3\nspool_dir = \"/tmp/x\"\ndurable_outbox = true\n",
            Overrides::default(),
        )
        .expect("outbox");
        assert_eq!(
            settings.durable_outbox,
            Some(PathBuf::from("/tmp/x/outbox.journal"))
        );
        let settings = resolve_text(
            "id = 3\ndurable_outbox = \"/tmp/y/j\"\n",
            Overrides::default(),
        )
        .expect("outbox path");
        assert_eq!(settings.durable_outbox, Some(PathBuf::from("/tmp/y/j")));
    }
}
