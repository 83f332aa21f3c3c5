//! The port registry's markdown tables against its Rust constants.
//!
//! Goal: `spec/registry/Ports-v1.md` and `spec/registry/LanguagePorts-v1.md` are normative and
//! `tamtam_engine::core::registry` implements them; neither may drift. Method: parse the tables
//! of both documents and check every row against the constants, then walk every port number
//! through the registry's lookup functions and check each answer against the tables, so a
//! number added on only one side fails in either direction.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use tamtam_engine::core::registry::{
    self, AI_FIRST, AI_LAST, AI_TRANSLATE, APPLICATION_FIRST, LANGUAGE_FIRST, LANGUAGE_LAST,
    LANGUAGE_PORTS, MIDDLEWARE_FIRST, MIDDLEWARE_LAST, ORCHESTRATOR, PortClass, SYSTEM_RESERVED_10,
};

/// Name the system port table gives a port that is reserved but unassigned.
const RESERVED: &str = "RESERVED";

fn read_spec(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../spec/registry")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The body rows of the first table after the heading that starts with `heading`, as trimmed
/// cells with surrounding backticks removed.
fn table_after(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let mut lines = doc.lines().skip_while(|line| !line.starts_with(heading));
    assert!(lines.next().is_some(), "no heading {heading:?}");
    let table: Vec<&str> = lines
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .collect();
    assert!(table.len() >= 2, "no table after {heading:?}");
    assert!(
        table[1].contains("---"),
        "table after {heading:?} has no separator row"
    );
    table[2..]
        .iter()
        .map(|line| {
            line.trim()
                .trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().trim_matches('`').to_owned())
                .collect()
        })
        .collect()
}

fn port(cell: &str) -> u16 {
    cell.parse()
        .unwrap_or_else(|e| panic!("port cell {cell:?}: {e}"))
}

fn class_named(name: &str) -> PortClass {
    match name {
        "Orchestrator" => PortClass::Orchestrator,
        "System" => PortClass::System,
        "Middleware" => PortClass::Middleware,
        "Language" => PortClass::Language,
        "AI" => PortClass::Ai,
        "Application" => PortClass::Application,
        other => panic!("unknown port class {other:?}"),
    }
}

/// `port → name` from a table whose first two columns are port and name; ports must be unique.
fn names_by_port(rows: &[Vec<String>]) -> BTreeMap<u16, String> {
    let mut map = BTreeMap::new();
    for row in rows {
        let previous = map.insert(port(&row[0]), row[1].clone());
        assert!(previous.is_none(), "port {} listed twice", row[0]);
    }
    map
}

#[test]
fn ranges_agree_with_port_classes_and_constants() {
    let rows = table_after(&read_spec("Ports-v1.md"), "## 2. Ranges");
    let ranges: Vec<(u16, u16, PortClass)> = rows
        .iter()
        .map(|row| (port(&row[0]), port(&row[1]), class_named(&row[2])))
        .collect();

    // The ranges tile 0..=65535 in order.
    assert_eq!(ranges.first().map(|r| r.0), Some(0));
    assert_eq!(ranges.last().map(|r| r.1), Some(u16::MAX));
    for pair in ranges.windows(2) {
        assert_eq!(pair[0].1 + 1, pair[1].0, "gap or overlap at {}", pair[1].0);
    }
    // Every port of a range has that range's class, and the code knows no other class.
    for &(first, last, class) in &ranges {
        for p in first..=last {
            assert_eq!(PortClass::of(p), class, "port {p}");
        }
    }
    let classes: Vec<PortClass> = ranges.iter().map(|r| r.2).collect();
    for class in [
        PortClass::Orchestrator,
        PortClass::System,
        PortClass::Middleware,
        PortClass::Language,
        PortClass::Ai,
        PortClass::Application,
    ] {
        assert_eq!(
            classes.iter().filter(|c| **c == class).count(),
            1,
            "{class:?} must have exactly one range"
        );
    }
    // The named boundaries are the table's.
    let range_of = |class: PortClass| {
        let &(first, last, _) = ranges.iter().find(|r| r.2 == class).expect("range");
        (first, last)
    };
    assert_eq!(
        range_of(PortClass::Orchestrator),
        (ORCHESTRATOR, ORCHESTRATOR)
    );
    assert_eq!(range_of(PortClass::System).1, SYSTEM_RESERVED_10);
    assert_eq!(
        range_of(PortClass::Middleware),
        (MIDDLEWARE_FIRST, MIDDLEWARE_LAST)
    );
    assert_eq!(
        range_of(PortClass::Language),
        (LANGUAGE_FIRST, LANGUAGE_LAST)
    );
    assert_eq!(range_of(PortClass::Ai), (AI_FIRST, AI_LAST));
    assert_eq!(range_of(PortClass::Application).0, APPLICATION_FIRST);
}

#[test]
fn system_ports_agree_both_ways() {
    let rows = table_after(&read_spec("Ports-v1.md"), "## 3. System ports");
    let table = names_by_port(&rows);
    // Spec → code: every row is the code's name (or reserved and unnamed) in the system ranges.
    for (&p, name) in &table {
        assert!(
            PortClass::of(p).is_reserved(),
            "port {p} is not a system port"
        );
        if name == RESERVED {
            assert_eq!(registry::system_port_name(p), None, "port {p}");
            assert_eq!(p, SYSTEM_RESERVED_10);
        } else {
            assert_eq!(
                registry::system_port_name(p),
                Some(name.as_str()),
                "port {p}"
            );
        }
    }
    // Code → spec: every port the code names, and every port of the system ranges, is a row.
    for p in 0..=u16::MAX {
        if let Some(name) = registry::system_port_name(p) {
            assert_eq!(table.get(&p).map(String::as_str), Some(name), "port {p}");
        }
        if PortClass::of(p).is_reserved() {
            assert!(
                table.contains_key(&p),
                "system port {p} missing from the spec"
            );
        }
    }
    for (constant, value) in [
        ("ORCHESTRATOR", registry::ORCHESTRATOR),
        ("LOGGER", registry::LOGGER),
        ("REPORTER", registry::REPORTER),
        ("DISCOVERY", registry::DISCOVERY),
        ("TRACE_REPORT", registry::TRACE_REPORT),
        ("DEAD_LETTER", registry::DEAD_LETTER),
        ("AUDIT", registry::AUDIT),
        ("PRESENCE", registry::PRESENCE),
        ("ROUTING", registry::ROUTING),
        ("TRANSFER", registry::TRANSFER),
        (RESERVED, SYSTEM_RESERVED_10),
    ] {
        assert_eq!(table.get(&value).map(String::as_str), Some(constant));
    }
}

#[test]
fn ai_ports_agree_both_ways() {
    let rows = table_after(&read_spec("Ports-v1.md"), "## 5. AI ports");
    let table = names_by_port(&rows);
    for (&p, name) in &table {
        assert_eq!(PortClass::of(p), PortClass::Ai, "port {p}");
        assert_eq!(registry::ai_port_name(p), Some(name.as_str()), "port {p}");
    }
    for p in 0..=u16::MAX {
        if let Some(name) = registry::ai_port_name(p) {
            assert_eq!(table.get(&p).map(String::as_str), Some(name), "port {p}");
        }
    }
    assert_eq!(
        table.get(&AI_TRANSLATE).map(String::as_str),
        Some("AI_TRANSLATE")
    );
}

#[test]
fn language_table_agrees_both_ways() {
    let rows = table_after(&read_spec("LanguagePorts-v1.md"), "## 2. The table");
    let spec: Vec<(u16, String, String)> = rows
        .iter()
        .map(|row| (port(&row[0]), row[1].clone(), row[2].clone()))
        .collect();
    let code: Vec<(u16, String, String)> = LANGUAGE_PORTS
        .iter()
        .map(|entry| (entry.port, entry.code.to_owned(), entry.name.to_owned()))
        .collect();
    assert_eq!(spec, code, "LanguagePorts-v1.md and LANGUAGE_PORTS differ");

    // Through the lookup functions, over the whole language range.
    for p in LANGUAGE_FIRST..=LANGUAGE_LAST {
        let row = spec.iter().find(|(port, _, _)| *port == p);
        let entry = registry::language_of_port(p);
        assert_eq!(
            entry.map(|e| (e.code, e.name)),
            row.map(|(_, code, name)| (code.as_str(), name.as_str())),
            "port {p}"
        );
    }
    for (p, code, _) in &spec {
        assert_eq!(registry::language_port(code), Some(*p), "code {code}");
    }
    // The seed's own examples.
    assert_eq!(registry::language_port("cs"), Some(150));
    assert_eq!(registry::language_port("fr"), Some(234));
}
