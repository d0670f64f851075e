//! The operator-facing files of `deploy/`: Grafana dashboards and Prometheus alert
//! rules, read so tests can check their structure and run their queries.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// One query of a dashboard panel.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub dashboard: String,
    pub panel: String,
    pub expr: String,
}

/// Every dashboard file, parsed.
pub fn dashboards() -> Result<Vec<(String, Value)>, String> {
    let dir = deploy_dir().join("grafana/dashboards");
    let mut out = Vec::new();
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
        out.push((
            path.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            json,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    if out.is_empty() {
        return Err(format!("no dashboards in {}", dir.display()));
    }
    Ok(out)
}

fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// `$name` and `${name}` references in `text`, without Grafana's built-ins.
fn variables_used(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let braced = bytes.get(i + 1) == Some(&b'{');
            let start = i + 1 + usize::from(braced);
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            let name = &text[start..end];
            if !name.is_empty() && !name.starts_with("__") {
                used.insert(name.to_string());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    used
}

/// Structural problems of one dashboard: ids, datasources, queries, variables.
pub fn check_structure(name: &str, dashboard: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let defined: BTreeSet<String> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    if dashboard["uid"].as_str().is_none_or(str::is_empty) {
        problems.push(format!("{name}: no uid"));
    }
    let mut ids = BTreeSet::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        match panel["id"].as_u64() {
            Some(id) if !ids.insert(id) => problems.push(format!("{name}: panel id {id} repeats")),
            Some(_) => {}
            None => problems.push(format!("{name}: panel {title:?} has no id")),
        }
        if panel["type"] == "row" {
            continue;
        }
        if !panel["datasource"].is_object() && !panel["datasource"].is_string() {
            problems.push(format!("{name}: panel {title:?} has no datasource"));
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{name}: panel {title:?} has no query"));
        }
        for target in &targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            if expr.trim().is_empty() {
                problems.push(format!("{name}: panel {title:?} has an empty query"));
            }
        }
        let text = serde_json::to_string(panel).unwrap_or_default();
        for variable in variables_used(&text) {
            if !defined.contains(&variable) {
                problems.push(format!(
                    "{name}: panel {title:?} uses ${variable}, which is not defined"
                ));
            }
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let text = serde_json::to_string(&variable["query"]).unwrap_or_default();
        for used in variables_used(&text) {
            if !defined.contains(&used) {
                problems.push(format!("{name}: variable query uses undefined ${used}"));
            }
        }
    }
    problems
}

/// Every panel query of every dashboard.
pub fn panel_queries() -> Result<Vec<PanelQuery>, String> {
    let mut out = Vec::new();
    for (name, dashboard) in dashboards()? {
        for panel in panels(&dashboard) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(PanelQuery {
                        dashboard: name.clone(),
                        panel: panel["title"].as_str().unwrap_or_default().to_string(),
                        expr: expr.to_string(),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// A query with Grafana's variables replaced the way "All" selects them.
pub fn as_prometheus_query(expr: &str, rate_window: &str) -> String {
    let mut out = expr
        .replace("$__rate_interval", rate_window)
        .replace("${__rate_interval}", rate_window);
    for name in variables_used(expr) {
        out = out
            .replace(&format!("${{{name}}}"), ".*")
            .replace(&format!("${name}"), ".*");
    }
    out
}

/// `(alert name, expression)` of every rule in `deploy/prometheus/alerts.yml`.
pub fn alert_rules() -> Result<Vec<(String, String)>, String> {
    let path = deploy_dir().join("prometheus/alerts.yml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut name = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(alert) = line.strip_prefix("- alert:") {
            name = Some(alert.trim().to_string());
        } else if let Some(expr) = line.strip_prefix("expr:") {
            let alert = name.take().ok_or("an expr without an alert name")?;
            out.push((alert, expr.trim().to_string()));
        }
    }
    Ok(out)
}

/// The signal of an alert: its expression without the final threshold comparison.
pub fn alert_signal(expr: &str) -> String {
    for op in [" >= ", " <= ", " == ", " != ", " > ", " < "] {
        if let Some(at) = expr.rfind(op) {
            let threshold = expr[at + op.len()..].trim();
            if threshold.parse::<f64>().is_ok() {
                return expr[..at].trim().to_string();
            }
        }
    }
    expr.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_variables_and_signals() {
        assert_eq!(
            variables_used("rate(x{a=~\"$topic\",b=\"${group}\"}[$__rate_interval])"),
            BTreeSet::from(["group".to_string(), "topic".to_string()])
        );
        assert_eq!(
            alert_signal("up{job=\"strata\"} == 0"),
            "up{job=\"strata\"}"
        );
        assert_eq!(alert_signal("max(x) > 300"), "max(x)");
        assert_eq!(
            as_prometheus_query("rate(x{t=~\"$topic\"}[$__rate_interval])", "30s"),
            "rate(x{t=~\".*\"}[30s])"
        );
    }
}
