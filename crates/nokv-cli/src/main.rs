//! `nokv-fs`: the command-line front door. Parses arguments, runs one
//! command against the volume, maps errors once to a one-line message
//! and an exit code (see `nokv_types::Error::exit_code`).

mod cli;
mod commands;
mod mount;
mod output;
mod progress;
mod serve;
mod snapshot;
mod view;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    // The server logs what it does; one-shot commands only warnings.
    let default_level = match cli.command {
        cli::Command::Serve(_) | cli::Command::Mount(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NOKV_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nokv-fs: cannot start the async runtime: {e}");
            std::process::exit(5);
        }
    };
    let code = match runtime.block_on(commands::run(cli)) {
        Ok(()) => 0,
        Err(e) => report(&e),
    };
    // Dropping the runtime waits for blocking tasks; the volume is
    // already closed by then.
    drop(runtime);
    std::process::exit(code);
}

fn report(err: &anyhow::Error) -> i32 {
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::BrokenPipe {
            return 0; // `nokv-fs cat f | head` is not a failure
        }
    }
    eprintln!("nokv-fs: {err:#}");
    match err.downcast_ref::<nokv_client::Error>() {
        Some(e) => e.exit_code(),
        None => 1,
    }
}
