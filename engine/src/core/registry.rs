//! The port registry: the numbers of `spec/registry/Ports-v1.md` and
//! `spec/registry/LanguagePorts-v1.md` as constants. A port is a logical service, not a network
//! port. The spec is normative; a test checks that the tables here and there agree.

/// Orchestrator: cycle speed, Terminator assignment, overload recovery. Runs last in a cycle.
pub const ORCHESTRATOR: u16 = 0;
/// Logger: log-and-forward middleware tee; sees every delivered message first.
pub const LOGGER: u16 = 1;
/// Reporter: bus and node statistics, transfer progress (percent, rate, ETA).
pub const REPORTER: u16 = 2;
/// Discovery: which station serves which port; listener discovery for streams.
pub const DISCOVERY: u16 = 3;
/// TRACE_REPORT: collects trace reports (`spec/model/Trace-v1.md`).
pub const TRACE_REPORT: u16 = 4;
/// Dead-letter: messages whose attempt budget ran out, with their audit record.
pub const DEAD_LETTER: u16 = 5;
/// Audit: audit records of the station's own decisions (dead-letters, drops, operator actions).
pub const AUDIT: u16 = 6;
/// Presence: heartbeats and dead-man detection of silent peers.
pub const PRESENCE: u16 = 7;
/// Routing: route advertisements for multi-hop forwarding.
pub const ROUTING: u16 = 8;
/// Transfer: bulk transfer control (offer, resume map, completion).
pub const TRANSFER: u16 = 9;
/// Reserved system port for a future service.
pub const SYSTEM_RESERVED_10: u16 = 10;

/// First middleware port.
pub const MIDDLEWARE_FIRST: u16 = 11;
/// Last middleware port.
pub const MIDDLEWARE_LAST: u16 = 100;
/// First language translation port.
pub const LANGUAGE_FIRST: u16 = 101;
/// Last language translation port.
pub const LANGUAGE_LAST: u16 = 1000;
/// First AI translation port.
pub const AI_FIRST: u16 = 1001;
/// Last AI translation port.
pub const AI_LAST: u16 = 1100;
/// The general AI translator (for example backed by Ollama): the default fallback for an
/// unserved language port.
pub const AI_TRANSLATE: u16 = 1001;
/// First application port.
pub const APPLICATION_FIRST: u16 = 1101;

const _: () = assert!(SYSTEM_RESERVED_10 + 1 == MIDDLEWARE_FIRST);
const _: () = assert!(MIDDLEWARE_LAST + 1 == LANGUAGE_FIRST);
const _: () = assert!(LANGUAGE_LAST + 1 == AI_FIRST);
const _: () = assert!(AI_LAST + 1 == APPLICATION_FIRST);
const _: () = assert!(AI_TRANSLATE >= AI_FIRST);
const _: () = assert!(AI_TRANSLATE <= AI_LAST);

/// The class of a port, by range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortClass {
    /// Port 0.
    Orchestrator,
    /// Ports 1–10.
    System,
    /// Ports 11–100.
    Middleware,
    /// Ports 101–1000.
    Language,
    /// Ports 1001–1100.
    Ai,
    /// Ports 1101 and above.
    Application,
}

impl PortClass {
    /// The class `port` belongs to.
    pub const fn of(port: u16) -> PortClass {
        match port {
            ORCHESTRATOR => PortClass::Orchestrator,
            1..=10 => PortClass::System,
            MIDDLEWARE_FIRST..=MIDDLEWARE_LAST => PortClass::Middleware,
            LANGUAGE_FIRST..=LANGUAGE_LAST => PortClass::Language,
            AI_FIRST..=AI_LAST => PortClass::Ai,
            _ => PortClass::Application,
        }
    }

    /// Whether the engine itself serves ports of this class (applications may not register
    /// handlers there without asking for a system role).
    pub const fn is_reserved(self) -> bool {
        matches!(self, PortClass::Orchestrator | PortClass::System)
    }
}

/// The name of a system port, if `port` is one.
pub const fn system_port_name(port: u16) -> Option<&'static str> {
    Some(match port {
        ORCHESTRATOR => "ORCHESTRATOR",
        LOGGER => "LOGGER",
        REPORTER => "REPORTER",
        DISCOVERY => "DISCOVERY",
        TRACE_REPORT => "TRACE_REPORT",
        DEAD_LETTER => "DEAD_LETTER",
        AUDIT => "AUDIT",
        PRESENCE => "PRESENCE",
        ROUTING => "ROUTING",
        TRANSFER => "TRANSFER",
        _ => return None,
    })
}

/// The name of an assigned AI port, if `port` is one.
pub const fn ai_port_name(port: u16) -> Option<&'static str> {
    Some(match port {
        AI_TRANSLATE => "AI_TRANSLATE",
        _ => return None,
    })
}

/// A language translation port: translating *to* `code` is served on `port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LanguagePort {
    /// The port (101–1000).
    pub port: u16,
    /// ISO 639-1 code of the target language.
    pub code: &'static str,
    /// English name of the language.
    pub name: &'static str,
}

/// The language table of `spec/registry/LanguagePorts-v1.md`, sorted by port. Ports not listed
/// are unassigned; new languages are appended, never renumbered.
pub const LANGUAGE_PORTS: &[LanguagePort] = &[
    LanguagePort {
        port: 101,
        code: "en",
        name: "English",
    },
    LanguagePort {
        port: 102,
        code: "de",
        name: "German",
    },
    LanguagePort {
        port: 103,
        code: "es",
        name: "Spanish",
    },
    LanguagePort {
        port: 104,
        code: "it",
        name: "Italian",
    },
    LanguagePort {
        port: 105,
        code: "pt",
        name: "Portuguese",
    },
    LanguagePort {
        port: 106,
        code: "nl",
        name: "Dutch",
    },
    LanguagePort {
        port: 107,
        code: "pl",
        name: "Polish",
    },
    LanguagePort {
        port: 108,
        code: "ru",
        name: "Russian",
    },
    LanguagePort {
        port: 109,
        code: "uk",
        name: "Ukrainian",
    },
    LanguagePort {
        port: 110,
        code: "ja",
        name: "Japanese",
    },
    LanguagePort {
        port: 111,
        code: "zh",
        name: "Chinese",
    },
    LanguagePort {
        port: 112,
        code: "ko",
        name: "Korean",
    },
    LanguagePort {
        port: 113,
        code: "ar",
        name: "Arabic",
    },
    LanguagePort {
        port: 114,
        code: "hi",
        name: "Hindi",
    },
    LanguagePort {
        port: 115,
        code: "tr",
        name: "Turkish",
    },
    LanguagePort {
        port: 116,
        code: "sv",
        name: "Swedish",
    },
    LanguagePort {
        port: 117,
        code: "da",
        name: "Danish",
    },
    LanguagePort {
        port: 118,
        code: "fi",
        name: "Finnish",
    },
    LanguagePort {
        port: 119,
        code: "nb",
        name: "Norwegian Bokmål",
    },
    LanguagePort {
        port: 120,
        code: "el",
        name: "Greek",
    },
    LanguagePort {
        port: 121,
        code: "hu",
        name: "Hungarian",
    },
    LanguagePort {
        port: 122,
        code: "ro",
        name: "Romanian",
    },
    LanguagePort {
        port: 123,
        code: "bg",
        name: "Bulgarian",
    },
    LanguagePort {
        port: 124,
        code: "hr",
        name: "Croatian",
    },
    LanguagePort {
        port: 125,
        code: "sr",
        name: "Serbian",
    },
    LanguagePort {
        port: 126,
        code: "sl",
        name: "Slovenian",
    },
    LanguagePort {
        port: 127,
        code: "et",
        name: "Estonian",
    },
    LanguagePort {
        port: 128,
        code: "lv",
        name: "Latvian",
    },
    LanguagePort {
        port: 129,
        code: "lt",
        name: "Lithuanian",
    },
    LanguagePort {
        port: 130,
        code: "he",
        name: "Hebrew",
    },
    LanguagePort {
        port: 131,
        code: "th",
        name: "Thai",
    },
    LanguagePort {
        port: 132,
        code: "vi",
        name: "Vietnamese",
    },
    LanguagePort {
        port: 133,
        code: "id",
        name: "Indonesian",
    },
    LanguagePort {
        port: 134,
        code: "ms",
        name: "Malay",
    },
    LanguagePort {
        port: 135,
        code: "fa",
        name: "Persian",
    },
    LanguagePort {
        port: 136,
        code: "ga",
        name: "Irish",
    },
    LanguagePort {
        port: 137,
        code: "ca",
        name: "Catalan",
    },
    LanguagePort {
        port: 138,
        code: "eu",
        name: "Basque",
    },
    LanguagePort {
        port: 139,
        code: "gl",
        name: "Galician",
    },
    LanguagePort {
        port: 140,
        code: "sw",
        name: "Swahili",
    },
    LanguagePort {
        port: 150,
        code: "cs",
        name: "Czech",
    },
    LanguagePort {
        port: 151,
        code: "sk",
        name: "Slovak",
    },
    LanguagePort {
        port: 234,
        code: "fr",
        name: "French",
    },
];

/// The language port for an ISO 639-1 code.
pub fn language_port(code: &str) -> Option<u16> {
    LANGUAGE_PORTS
        .iter()
        .find(|entry| entry.code.eq_ignore_ascii_case(code))
        .map(|entry| entry.port)
}

/// The language served on `port`, if the table assigns one.
pub fn language_of_port(port: u16) -> Option<&'static LanguagePort> {
    LANGUAGE_PORTS
        .binary_search_by_key(&port, |entry| entry.port)
        .ok()
        .map(|i| &LANGUAGE_PORTS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_examples() {
        assert_eq!(language_port("cs"), Some(150));
        assert_eq!(language_port("FR"), Some(234));
        assert_eq!(language_of_port(150).unwrap().name, "Czech");
        assert_eq!(PortClass::of(1001), PortClass::Ai);
    }

    #[test]
    fn language_table_is_sorted_unique_and_in_range() {
        for pair in LANGUAGE_PORTS.windows(2) {
            assert!(pair[0].port < pair[1].port);
        }
        for entry in LANGUAGE_PORTS {
            assert_eq!(PortClass::of(entry.port), PortClass::Language);
            assert_eq!(entry.code.len(), 2);
            assert_eq!(
                LANGUAGE_PORTS
                    .iter()
                    .filter(|e| e.code == entry.code)
                    .count(),
                1
            );
        }
    }

    #[test]
    fn classes_cover_boundaries() {
        assert_eq!(PortClass::of(0), PortClass::Orchestrator);
        assert_eq!(PortClass::of(10), PortClass::System);
        assert_eq!(PortClass::of(11), PortClass::Middleware);
        assert_eq!(PortClass::of(100), PortClass::Middleware);
        assert_eq!(PortClass::of(101), PortClass::Language);
        assert_eq!(PortClass::of(1000), PortClass::Language);
        assert_eq!(PortClass::of(1100), PortClass::Ai);
        assert_eq!(PortClass::of(1101), PortClass::Application);
        assert_eq!(PortClass::of(u16::MAX), PortClass::Application);
    }
}
