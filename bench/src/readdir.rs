//! Listing a big directory with attributes (readdirplus), in entries/s.
//!
//! One directory of `--entries` empty files (created by T threads,
//! untimed for the comparison, its rate printed for information), then
//! timed full listings, single-threaded:
//! - nokv: `Volume::readdirplus(dir, after, --page)` page by page; the
//!   first pass right after the create burst, then warm passes (best of
//!   3 is reported); plus warm names-only passes (`readdir`);
//! - sdk: the volume is closed and reopened by `nokv_client::Client`,
//!   whose `list(path)` pages by 4096 (first pass after reopen, warm);
//! - ext4: `std::fs::read_dir` + `DirEntry::metadata()` per entry (the
//!   readdirplus equivalent), first and warm (best of 3), plus names
//!   only (best of 3).
//!
//! Every pass must return exactly `--entries` entries.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use nokv_client::{Client, ClientOptions};
use nokv_meta::Volume;
use nokv_types::ROOT_INO;
use serde_json::json;

use crate::common::{
    init_volume, rate, remove_if_exists, run_parallel, share, CommonArgs, Scratch, DIR_OWNER,
    FILE_OWNER,
};
use crate::posix;
use crate::report::{int, ratio, ratio_value, Report, Table};

#[derive(Debug, Clone, Args)]
pub struct ReaddirArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Entries in the listed directory.
    #[arg(long, default_value_t = 100_000)]
    pub entries: usize,
    /// Entries per readdirplus page (nokv side).
    #[arg(long, default_value_t = 4096)]
    pub page: usize,
}

/// Warm passes: the best of this many is reported.
const WARM_PASSES: usize = 3;

fn name(i: usize) -> String {
    format!("sample-{i:08}.bin")
}

fn nokv_list(vol: &Volume, dir: u64, page: usize, plus: bool) -> Result<(usize, Duration)> {
    let start = Instant::now();
    let mut n = 0usize;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let next = if plus {
            let p = vol
                .readdirplus(dir, after.as_deref(), page)
                .context("nokv readdirplus")?;
            n += p.entries.len();
            std::hint::black_box(&p.entries);
            p.next
        } else {
            let p = vol
                .readdir(dir, after.as_deref(), page)
                .context("nokv readdir")?;
            n += p.entries.len();
            std::hint::black_box(&p.entries);
            p.next
        };
        match next {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    Ok((n, start.elapsed()))
}

fn check(side: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        bail!("{side}: listed {got} entries, expected {want}");
    }
    Ok(())
}

pub fn run(args: &ReaddirArgs, scratch: &Scratch) -> Result<Report> {
    let threads = args.common.threads.max(1);
    let durability = args.common.durability;
    let n = args.entries;
    let page = args.page.max(1);

    // nokv
    let home = scratch.sub("readdir-nokv")?;
    let vol = init_volume(&home, durability)?;
    let dir = vol
        .mkdir(ROOT_INO, b"list", DIR_OWNER)
        .context("nokv mkdir /list")?
        .ino;
    let t_fill = run_parallel(threads, |t| {
        let (lo, hi) = share(n, t, threads);
        for i in lo..hi {
            let nm = name(i);
            vol.create(dir, nm.as_bytes(), FILE_OWNER, true)
                .with_context(|| format!("nokv create /list/{nm}"))?;
        }
        Ok(())
    })?;
    let nokv_fill = rate(n, t_fill);
    let (c, nokv_first) = nokv_list(&vol, dir, page, true)?;
    check("nokv first pass", c, n)?;
    let mut nokv_warm = Duration::MAX;
    let mut nokv_names = Duration::MAX;
    for _ in 0..WARM_PASSES {
        let (c, d) = nokv_list(&vol, dir, page, true)?;
        check("nokv warm pass", c, n)?;
        nokv_warm = nokv_warm.min(d);
        let (c, d) = nokv_list(&vol, dir, page, false)?;
        check("nokv names pass", c, n)?;
        nokv_names = nokv_names.min(d);
    }
    drop(vol);

    // sdk: reopen the same volume through the client.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    let (sdk_first, sdk_warm) = rt.block_on(async {
        let opts = ClientOptions {
            durability: durability.engine(),
            ..ClientOptions::default()
        };
        let client = Client::open(&home, opts)
            .await
            .context("sdk: reopening the volume")?;
        let mut first = None;
        let mut warm = Duration::MAX;
        for pass in 0..=WARM_PASSES {
            let start = Instant::now();
            let entries = client
                .list("/list")
                .await
                .with_context(|| format!("sdk list /list (pass {pass})"))?;
            let d = start.elapsed();
            check("sdk pass", entries.len(), n)?;
            match first {
                None => first = Some(d),
                Some(_) => warm = warm.min(d),
            }
        }
        anyhow::Ok((first.unwrap_or(Duration::MAX), warm))
    })?;
    drop(rt);
    remove_if_exists(&home)?;

    // ext4
    let root = scratch.sub("readdir-ext4")?;
    let list = root.join("list");
    posix::mkdir(&list)?;
    let t_fill = run_parallel(threads, |t| {
        let (lo, hi) = share(n, t, threads);
        for i in lo..hi {
            posix::create_file(&list.join(name(i)))?;
        }
        Ok(())
    })?;
    let ext4_fill = rate(n, t_fill);
    // [first plus, best warm plus, best names]
    let mut ext4 = [Duration::MAX; 3];
    let timed = |plus: bool| -> Result<Duration> {
        let start = Instant::now();
        let c = if plus {
            posix::list_plus(&list)?
        } else {
            posix::list_names(&list)?
        };
        let d = start.elapsed();
        check("ext4 listing", c, n)?;
        Ok(d)
    };
    ext4[0] = timed(true)?;
    for _ in 0..WARM_PASSES {
        ext4[1] = ext4[1].min(timed(true)?);
        ext4[2] = ext4[2].min(timed(false)?);
    }
    remove_if_exists(&root)?;

    let r = |d: Duration| rate(n, d);
    let rows = [
        (
            "readdirplus, first pass",
            r(nokv_first),
            r(ext4[0]),
            Some(r(sdk_first)),
        ),
        (
            "readdirplus, warm (best of 3)",
            r(nokv_warm),
            r(ext4[1]),
            Some(r(sdk_warm)),
        ),
        (
            "names only (readdir), warm (best of 3)",
            r(nokv_names),
            r(ext4[2]),
            None,
        ),
    ];
    let mut table = Table::new(&[
        "pass",
        "nokv entries/s",
        "ext4 entries/s",
        "nokv/ext4",
        "sdk entries/s",
        "sdk/nokv",
    ]);
    let mut results = Vec::new();
    for (label, nokv, ext4, sdk) in rows {
        table.row(vec![
            label.to_string(),
            int(nokv),
            int(ext4),
            ratio(nokv, ext4),
            sdk.map(int).unwrap_or_else(|| "-".into()),
            sdk.map(|s| ratio(s, nokv)).unwrap_or_else(|| "-".into()),
        ]);
        results.push(json!({
            "pass": label,
            "nokv_entries_s": nokv,
            "ext4_entries_s": ext4,
            "sdk_entries_s": sdk,
            "nokv_over_ext4": ratio_value(nokv, ext4),
        }));
    }
    Ok(Report {
        bench: "readdir",
        title: format!(
            "Listing one directory of {n} files, one thread, nokv pages of {page}. \
             NoKV durability={} (only matters for the fill).",
            durability.name()
        ),
        tables: vec![(String::new(), table)],
        notes: vec![
            format!(
                "fill ({threads} threads, for information): nokv {} creates/s, ext4 {} creates/s",
                int(nokv_fill),
                int(ext4_fill)
            ),
            "nokv first pass runs right after the create burst; sdk first pass runs right \
             after Client::open of the same volume (holt cache cold, OS page cache warm)"
                .into(),
        ],
        params: json!({
            "entries": n,
            "page": page,
            "threads": threads,
            "durability": durability.name(),
        }),
        results: json!({
            "passes": results,
            "fill_nokv_creates_s": nokv_fill,
            "fill_ext4_creates_s": ext4_fill,
        }),
    })
}
