//! Goal: every scenario of `tamtam-bench` runs end to end (child processes, raw baselines,
//! TamTam stations, the report in both output forms). Method: run the binary once with tiny
//! sizes (`--smoke`) and `--json`, and check that each scenario produced its figures with
//! finite values. Nothing here asserts anything about speed: this machine is shared and the
//! figures are only meaningful from a real run (`tamtam bench`).

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tamtam-bench"))
        .args(args)
        .output()
        .expect("run tamtam-bench")
}

#[test]
fn every_scenario_runs_once_with_tiny_sizes() {
    let out = bench(&["--smoke", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tamtam-bench failed: {stderr}");
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json prints one JSON document");
    let results = json["results"].as_object().expect("results object");
    for key in [
        "raw_tcp_64B_rtt_p50",
        "raw_tcp_busy_64B_rtt_p50",
        "raw_udp_64B_rtt_p50",
        "raw_thread_64B_rtt_p50",
        "raw_tcp_stream_bw",
        "raw_tcp_batched_64B_tput",
        "raw_thread_64B_tput",
        "fast_tcp_64B_rtt_p50",
        "fast_tcp_64B_rtt_api_p99",
        "fast_tcp_spin_64B_rtt_p50",
        "fast_udp_64B_rtt_p50",
        "fast_inproc_64B_rtt_p50",
        "fast_tcp_64B_tput",
        "fast_tcp_64B_tput_api",
        "fast_tcp_1KiB_tput_mbps",
        "fast_inproc_64B_tput",
        "fanout_8x_64B_deliveries",
        "bulk_4MiB_bw",
        "bulk_4MiB_receiver_rss",
        "stream_64B_fps",
        "stream_1KiB_fps",
        "stream_8sub_64B_fps",
        "stream_8sub_slow_64B_fps",
        "scale_1p_1c_64B_rtt_p99",
        "scale_100p_10c_64B_rtt_p99",
        "scale_100p_10c_cost",
    ] {
        let value = results
            .get(key)
            .and_then(|r| r["value"].as_f64())
            .unwrap_or_else(|| panic!("no figure {key}; stderr: {stderr}"));
        assert!(value.is_finite() && value >= 0.0, "{key} = {value}");
    }
    // The received bulk object is checked by the harness itself.
    assert_eq!(results["bulk_4MiB_verified"]["value"].as_f64(), Some(1.0));
    assert!(results.keys().any(|k| k.starts_with("backend_")));
    assert!(results.keys().any(|k| k.contains("_cpu_")));
    assert!(results.keys().any(|k| k.contains("_rss_")));
}

#[test]
fn table_and_result_lines_without_json() {
    let out = bench(&["--smoke", "--scenario", "fast-rtt"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ratio"), "a table: {stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT fast_tcp_64B_rtt_p50 "))
        .expect("a RESULT line for the fast-lane p50");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 4);
    assert!(fields[2].parse::<f64>().is_ok());
    assert_eq!(fields[3], "us");
}

#[test]
fn unknown_scenario_is_refused() {
    let out = bench(&["--smoke", "--scenario", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scenario"));
}
