//! The Grafana dashboards and Prometheus rules are well formed: valid JSON, unique
//! panel ids, a datasource and a query on every panel, every variable defined, and
//! rules that `promtool` accepts. (Whether the queries return data is checked
//! against a real Prometheus in the `observability` suite.)

use std::process::Command;

use strata_integration::dashboards;

#[test]
fn dashboards_are_well_formed() {
    let boards = dashboards::dashboards().expect("dashboards load");
    assert_eq!(
        boards.len(),
        4,
        "cluster overview, storage, topics & groups, runtime"
    );
    let problems: Vec<String> = boards
        .iter()
        .flat_map(|(name, board)| dashboards::check_structure(name, board))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn structure_check_catches_what_it_should() {
    let broken = serde_json::json!({
        "uid": "x",
        "templating": {"list": [{"name": "datasource"}]},
        "panels": [
            {"id": 1, "type": "timeseries", "title": "a", "datasource": {"uid": "${datasource}"},
             "targets": [{"expr": "rate(x{t=~\"$topic\"}[1m])"}]},
            {"id": 1, "type": "timeseries", "title": "b", "targets": []}
        ]
    });
    let problems = dashboards::check_structure("broken", &broken).join("\n");
    for expected in ["$topic", "id 1 repeats", "no datasource", "no query"] {
        assert!(
            problems.contains(expected),
            "missing {expected:?} in:\n{problems}"
        );
    }
}

#[test]
fn alert_rules_pass_promtool() {
    let rules = dashboards::deploy_dir().join("prometheus/alerts.yml");
    let config = dashboards::deploy_dir().join("prometheus/prometheus.yml");
    for args in [vec!["check", "rules"], vec!["check", "config"]] {
        let file = if args[1] == "rules" { &rules } else { &config };
        let output = Command::new("promtool")
            .args(&args)
            .arg(file)
            .output()
            .expect("promtool runs: install it with deploy/testbed/prometheus.sh install");
        assert!(
            output.status.success(),
            "promtool {args:?} {}:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let names: Vec<String> = dashboards::alert_rules()
        .expect("rules parse")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for wanted in [
        "StrataBrokerDown",
        "StrataProduceLatencyHigh",
        "StrataFetchLatencyHigh",
        "StrataObjectStoreErrors",
        "StrataObjectStoreThrottled",
        "StrataWalNotDraining",
        "StrataConsumerLagHigh",
        "StrataMetadataStoreErrors",
    ] {
        assert!(names.iter().any(|n| n == wanted), "no rule {wanted}");
    }
}
