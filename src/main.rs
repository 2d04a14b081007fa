//! l2vip: argument parsing and dispatch.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use l2vip::config::DEFAULT_PATH;
use l2vip::daemon;

const USAGE: &str = "\
usage: l2vip daemon [-c FILE] [-v]     run the daemon in the foreground
       l2vip check-config [-c FILE]    validate FILE, print the normalized config
       l2vip --version

  -c, --config FILE   configuration file (default /etc/l2vip/config.json)
  -v, --verbose       log debug detail (RUST_LOG overrides)";

/// Exit status for a usage error (same as a configuration error).
const EXIT_USAGE: u8 = 2;

struct Options {
    config: PathBuf,
    verbose: bool,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        config: PathBuf::from(DEFAULT_PATH),
        verbose: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-c" | "--config" => {
                let path = args.next().ok_or_else(|| format!("{arg} needs a file"))?;
                options.config = PathBuf::from(path);
            }
            "-v" | "--verbose" => options.verbose = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

fn init_logging(verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format(|buf, record| {
            writeln!(
                buf,
                "l2vip: {}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            )
        })
        .init();
}

fn check_config(options: &Options) -> u8 {
    let loaded = daemon::load_config(&options.config).and_then(|config| {
        daemon::load_key(&config)
            .map(|_| config)
            .map_err(|e| format!("{}: {e}", options.config.display()))
    });
    match loaded {
        Ok(config) => match serde_json::to_string_pretty(&config) {
            Ok(text) => {
                println!("{text}");
                0
            }
            Err(e) => {
                eprintln!("l2vip: cannot print the configuration: {e}");
                daemon::EXIT_FAILURE
            }
        },
        Err(e) => {
            eprintln!("l2vip: {e}");
            daemon::EXIT_CONFIG
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(EXIT_USAGE);
    };
    let status = match command.as_str() {
        "--version" | "-V" | "version" => {
            println!("l2vip {}", env!("CARGO_PKG_VERSION"));
            0
        }
        "--help" | "-h" | "help" => {
            println!("{USAGE}");
            0
        }
        "daemon" | "check-config" => match parse_options(rest) {
            Ok(options) if command == "daemon" => {
                init_logging(options.verbose);
                daemon::run(&options.config)
            }
            Ok(options) => check_config(&options),
            Err(e) => {
                eprintln!("l2vip: {e}\n{USAGE}");
                EXIT_USAGE
            }
        },
        other => {
            eprintln!("l2vip: unknown command {other:?}\n{USAGE}");
            EXIT_USAGE
        }
    };
    ExitCode::from(status)
}
