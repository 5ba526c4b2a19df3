//! Reading and printing WasmPlugin status (kubectl-like).

use super::*;

/// The object's status is for its current generation.
pub fn current(o: &Value) -> bool {
    let generation = &o["metadata"]["generation"];
    let conditions = o["status"]["conditions"].as_array();
    conditions.is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| &c["observedGeneration"] == generation))
}

/// Programmed=True, naming the object's current generation (a status written while the new
/// generation is still on its way names the previous one).
pub fn programmed_current(o: &Value) -> bool {
    let generation = format!("generation {}", o["metadata"]["generation"]);
    condition(o, "Programmed").is_some_and(|c| c.0 == "True" && c.2.contains(&generation))
}

/// (status, reason, message) of a condition.
pub fn condition(o: &Value, kind: &str) -> Option<(String, String, String)> {
    let c = o["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == kind)?;
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Some((s("status"), s("reason"), s("message")))
}

pub fn describe(o: &Value) -> String {
    let name = o["metadata"]["name"].as_str().unwrap_or_default();
    let conds: Vec<String> = o["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={} {} {}",
                c["type"].as_str().unwrap_or(""),
                c["status"].as_str().unwrap_or(""),
                c["reason"].as_str().unwrap_or(""),
                c["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    format!("  {name} (generation {}): {}", o["metadata"]["generation"], conds.join("; "))
}

pub fn print_condition(o: &Value, kind: &str) {
    let name = o["metadata"]["name"].as_str().unwrap_or_default();
    if let Some((status, reason, message)) = condition(o, kind) {
        println!("   {name}: {kind}={status} reason={reason}");
        if !message.is_empty() {
            println!("     message: {message}");
        }
    }
}

pub fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}

/// A `kubectl get wasmplugins -o wide`-like table.
pub fn print_table(objects: &[Value], created: Instant) {
    let age = format!("{}s", created.elapsed().as_secs());
    let rows: Vec<[String; 7]> = objects
        .iter()
        .map(|o| {
            let c = |k: &str| condition(o, k).map(|c| c.0).unwrap_or_else(|| "-".into());
            [
                o["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                o["spec"]["phase"].as_str().unwrap_or("UNSPECIFIED_PHASE").to_string(),
                o["spec"]["priority"].as_i64().map_or("-".into(), |p| p.to_string()),
                c("Ready"),
                c("Programmed"),
                short(o["status"]["imageDigest"].as_str().unwrap_or("-")),
                age.clone(),
            ]
        })
        .collect();
    let header = ["NAME", "PHASE", "PRIORITY", "READY", "PROGRAMMED", "DIGEST", "AGE"].map(String::from);
    let mut widths = [0; 7];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("   {}", line.join("   ").trim_end());
    }
}
