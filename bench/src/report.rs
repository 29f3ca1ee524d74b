//! Output of a workload: a header naming what ran (durability, sizes,
//! threads, scratch file system), an aligned Markdown table with
//! absolute numbers and ratios, free-text notes, and with `--json` one
//! machine-readable line (`{"bench": ..., "results": [...]}`).
//!
//! Ratios are the numbers to compare across runs: the machine is shared
//! and noisy, but both sides of a ratio ran in the same process minutes
//! apart on the same disk.

use std::path::Path;

use serde_json::{json, Value};

/// A table whose first column is a label and the rest are values.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Markdown with padded columns (first left-aligned, rest right).
    pub fn render(&self) -> String {
        let cols = self.headers.len();
        let mut width = vec![3usize; cols];
        for (i, h) in self.headers.iter().enumerate() {
            width[i] = width[i].max(h.chars().count());
        }
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let mut s = String::from("|");
            for (i, w) in width.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                if i == 0 {
                    s.push_str(&format!(" {c:<w$} |"));
                } else {
                    s.push_str(&format!(" {c:>w$} |"));
                }
            }
            s
        };
        let mut out = line(&self.headers);
        out.push('\n');
        out.push('|');
        for (i, w) in width.iter().enumerate() {
            if i == 0 {
                out.push_str(&format!(" {} |", "-".repeat(*w)));
            } else {
                out.push_str(&format!(" {}: |", "-".repeat(w.saturating_sub(1))));
            }
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

/// What one workload prints.
#[derive(Debug, Clone)]
pub struct Report {
    pub bench: &'static str,
    /// One line: what ran, with which knobs.
    pub title: String,
    pub tables: Vec<(String, Table)>,
    pub notes: Vec<String>,
    /// Knobs, as JSON.
    pub params: Value,
    /// Numbers, as JSON.
    pub results: Value,
}

impl Report {
    pub fn print(&self, json_line: bool) {
        println!("\n## {}\n", self.bench);
        println!("{}\n", self.title);
        for (caption, table) in &self.tables {
            if !caption.is_empty() {
                println!("{caption}\n");
            }
            println!("{}", table.render());
        }
        for n in &self.notes {
            println!("- {n}");
        }
        if !self.notes.is_empty() {
            println!();
        }
        if json_line {
            let line = json!({
                "bench": self.bench,
                "params": self.params,
                "results": self.results,
            });
            println!("JSON {line}");
        }
    }
}

/// `12,345,678` style integer.
pub fn int(v: f64) -> String {
    if !v.is_finite() {
        return "inf".into();
    }
    let n = v.round() as i128;
    let digits = n.unsigned_abs().to_string();
    let head = digits.len() % 3;
    let mut parts: Vec<&str> = Vec::new();
    if head > 0 {
        parts.push(&digits[..head]);
    }
    for k in (head..digits.len()).step_by(3) {
        parts.push(&digits[k..k + 3]);
    }
    let out = parts.join(",");
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// `0.42x`: a / b.
pub fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 || !a.is_finite() || !b.is_finite() {
        return "n/a".into();
    }
    let r = a / b;
    if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 10.0 {
        format!("{r:.1}x")
    } else {
        format!("{r:.2}x")
    }
}

pub fn ratio_value(a: f64, b: f64) -> Option<f64> {
    if b == 0.0 || !a.is_finite() || !b.is_finite() {
        None
    } else {
        Some(a / b)
    }
}

pub fn ms(d: std::time::Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// `1.5 MiB` style size.
pub fn bytes(v: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = v as f64;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v} B")
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

/// One line describing the machine and the scratch file system.
pub fn machine_line(scratch: &Path) -> String {
    let m = machine(scratch);
    format!(
        "machine: nproc={} mem={} kernel={} loadavg={} scratch={} ({})",
        m["nproc"],
        m["mem_total"].as_str().unwrap_or("?"),
        m["kernel"].as_str().unwrap_or("?"),
        m["loadavg"].as_str().unwrap_or("?"),
        scratch.display(),
        m["scratch_fs"].as_str().unwrap_or("?"),
    )
}

pub fn machine(scratch: &Path) -> Value {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| bytes(kb * 1024))
        .unwrap_or_else(|| "?".into());
    json!({
        "nproc": nproc,
        "kernel": kernel,
        "mem_total": mem,
        "scratch_fs": crate::posix::fs_type(scratch),
        "loadavg": std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "?".into()),
    })
}
