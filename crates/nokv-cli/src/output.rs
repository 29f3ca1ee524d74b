//! Human and JSON renderings of attributes and listings.

use nokv_client::{Attr, DirEntryPlus, FileKind};
use serde_json::{json, Value};

pub fn attr_json(path: &str, a: &Attr) -> Value {
    json!({
        "path": path,
        "ino": a.ino,
        "kind": a.kind.as_str(),
        "mode": format!("{:o}", a.mode),
        "uid": a.uid,
        "gid": a.gid,
        "size": a.size,
        "nlink": a.nlink,
        "atime_ns": a.atime,
        "mtime_ns": a.mtime,
        "ctime_ns": a.ctime,
        "generation": a.generation,
        "digest": a.digest.map(hex::encode),
    })
}

pub fn entry_json(e: &DirEntryPlus) -> Value {
    let mut v = attr_json("", &e.attr);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("path");
        obj.insert("name".into(), json!(String::from_utf8_lossy(&e.name)));
    }
    v
}

/// `drwxr-xr-x` style mode string.
pub fn mode_string(a: &Attr) -> String {
    let mut s = String::with_capacity(10);
    s.push(match a.kind {
        FileKind::Dir => 'd',
        FileKind::Symlink => 'l',
        FileKind::File => '-',
    });
    let m = a.mode;
    for (shift, special, special_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (m >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        s.push(match (m & special != 0, x) {
            (true, true) => special_char,
            (true, false) => special_char.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// UTC `YYYY-MM-DD HH:MM:SS` of a nanosecond timestamp.
pub fn time_string(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn long_line(name: &str, a: &Attr, link_target: Option<&str>) -> String {
    let mut line = format!(
        "{} {:>3} {:>5} {:>5} {:>12} {} {}",
        mode_string(a),
        a.nlink,
        a.uid,
        a.gid,
        a.size,
        time_string(a.mtime),
        name
    );
    if let Some(t) = link_target {
        line.push_str(" -> ");
        line.push_str(t);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_modes() {
        assert_eq!(time_string(0), "1970-01-01 00:00:00");
        assert_eq!(
            time_string(1_700_000_000 * 1_000_000_000),
            "2023-11-14 22:13:20"
        );
        let mut a = Attr {
            ino: 1,
            kind: FileKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 0,
            atime: 0,
            mtime: 0,
            ctime: 0,
            nlink: 2,
            generation: 0,
            digest: None,
        };
        assert_eq!(mode_string(&a), "drwxr-xr-x");
        a.kind = FileKind::File;
        a.mode = 0o4644;
        assert_eq!(mode_string(&a), "-rwSr--r--");
    }
}
