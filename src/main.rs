//! l2vip: argument parsing and dispatch.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use l2vip::config::{self, DEFAULT_PATH, DEFAULT_SOCKET};
use l2vip::control::client::{self, ClientError};
use l2vip::control::protocol::Request;
use l2vip::control::render;
use l2vip::control::rpcd;
use l2vip::daemon;
use l2vip::syslog;
use serde_json::Value;

const USAGE: &str = "\
usage: l2vip daemon [-c FILE] [-v] [--syslog] [--notify COMMAND]
                                       run the daemon in the foreground
       l2vip check-config [-c FILE] [--offline]
                                       validate FILE, print the normalized config
       l2vip status | services | metrics [--prometheus]
       l2vip drain | undrain | handover [SERVICE] | reload
       l2vip add NAME IP INTERFACE [NODE...] | remove NAME
       l2vip rpcd list | call METHOD   OpenWrt's rpcd plugin protocol (ubus call l2vip ...)
       l2vip --version

  -c, --config FILE   configuration file, JSON or UCI (default /etc/l2vip/config.json)
  -v, --verbose       log debug detail (RUST_LOG overrides)
  --syslog            log to /dev/log (RFC 3164, facility daemon) instead of stderr
  --notify COMMAND    also run COMMAND (/bin/sh -c) on every acquire, release and role change
  --offline           check the file alone, not against this system (interfaces, key)
  --socket PATH       control socket (default /var/run/l2vip/control.sock)
  --json              print the daemon's answer as JSON, unchanged

exit status: 0 ok, 1 refused by the daemon, 2 usage or configuration error,
3 daemon unreachable";

/// Exit status for a usage error (same as a configuration error).
const EXIT_USAGE: u8 = 2;
/// Exit status: the daemon refused the request.
const EXIT_REFUSED: u8 = 1;
/// Exit status: no daemon answered.
const EXIT_UNREACHABLE: u8 = 3;

/// A client command's arguments.
struct ClientOptions {
    socket: PathBuf,
    json: bool,
    prometheus: bool,
    service: Option<String>,
    words: Vec<String>,
}

fn parse_client(command: &str, args: &[String]) -> Result<ClientOptions, String> {
    let mut options = ClientOptions {
        socket: PathBuf::from(DEFAULT_SOCKET),
        json: false,
        prometheus: false,
        service: None,
        words: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--socket" => {
                let path = args.next().ok_or("--socket needs a path")?;
                options.socket = PathBuf::from(path);
            }
            "--json" => options.json = true,
            "--prometheus" if command == "metrics" => options.prometheus = true,
            other
                if command == "handover"
                    && !other.starts_with('-')
                    && options.service.is_none() =>
            {
                options.service = Some(other.to_string());
            }
            other if matches!(command, "add" | "remove") && !other.starts_with('-') => {
                options.words.push(other.to_string());
            }
            other => return Err(format!("{command}: unknown argument {other:?}")),
        }
    }
    Ok(options)
}

/// Runs a client command against the daemon's control socket.
fn client_command(command: &str, args: &[String]) -> u8 {
    let options = match parse_client(command, args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("l2vip: {e}\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    let request = match (command, options.words.as_slice()) {
        ("add", [name, ip, interface, nodes @ ..]) => Request::Add {
            service: serde_json::json!({"name": name, "ip": ip, "interface": interface, "nodes": nodes}),
        },
        ("add", _) => {
            eprintln!("l2vip: add needs NAME IP INTERFACE [NODE...]\n{USAGE}");
            return EXIT_USAGE;
        }
        ("remove", [name]) => Request::Remove {
            service: name.clone(),
        },
        ("remove", _) => {
            eprintln!("l2vip: remove needs one NAME\n{USAGE}");
            return EXIT_USAGE;
        }
        _ => match command {
            "status" => Request::Status,
            "services" => Request::Services,
            "metrics" => Request::Metrics,
            "drain" => Request::Drain,
            "undrain" => Request::Undrain,
            "reload" => Request::Reload,
            _ => Request::Handover {
                service: options.service.clone(),
            },
        },
    };
    let response = match client::request(&options.socket, &request) {
        Ok(response) => response,
        Err(ClientError::Unreachable(e)) => {
            eprintln!("l2vip: {e}");
            return EXIT_UNREACHABLE;
        }
        Err(ClientError::TimedOut(e)) => {
            eprintln!("l2vip: {e}");
            return EXIT_REFUSED;
        }
        Err(ClientError::Protocol(e)) => {
            eprintln!("l2vip: {e}");
            return EXIT_REFUSED;
        }
    };
    if options.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&response.line).unwrap_or_default()
        );
        return if response.outcome.is_ok() {
            0
        } else {
            EXIT_REFUSED
        };
    }
    let data = match response.outcome {
        Ok(data) => data,
        Err((code, message)) => {
            eprintln!("l2vip: {code}: {message}");
            return EXIT_REFUSED;
        }
    };
    let text = match command {
        "status" => render::status(&data),
        "services" => render::services(&data),
        "metrics" if options.prometheus => render::prometheus(&data),
        "metrics" => render::metrics(&data),
        "drain" => "draining: this node gives up its VIPs and takes no new ones\n".into(),
        "undrain" => {
            "undrained: this node is a candidate again (VIPs stay where they are)\n".into()
        }
        "add" => format!("added {}\n", data["added"].as_str().unwrap_or_default()),
        "remove" => format!("removed {}\n", data["removed"].as_str().unwrap_or_default()),
        "reload" => {
            let restart: Vec<&str> = data["restart_needed"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut text = format!("reloaded: {} services\n", data["services"]);
            if !restart.is_empty() {
                text.push_str(&format!(
                    "changed, applied at the next restart: {}\n",
                    restart.join(", ")
                ));
            }
            text
        }
        _ => {
            let moved: Vec<String> = data["handed_over"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            format!("handed over: {}\n", moved.join(", "))
        }
    };
    print!("{text}");
    0
}

/// `l2vip rpcd list | call METHOD [--socket PATH]`: rpcd's exec-plugin
/// protocol. Always prints one JSON object; a call the daemon refused or
/// could not take exits 1, an unreachable daemon 3.
fn rpcd_command(args: &[String]) -> u8 {
    let mut socket = PathBuf::from(DEFAULT_SOCKET);
    let mut words = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.as_slice().first()) {
            ("--socket", Some(path)) => {
                socket = PathBuf::from(path);
                args.next();
            }
            (word, _) if !word.starts_with('-') => words.push(word),
            (other, _) => {
                eprintln!("l2vip: rpcd: unknown argument {other:?}\n{USAGE}");
                return EXIT_USAGE;
            }
        }
    }
    // Written as the control socket writes its answers.
    let print = |answer: &Value| println!("{}", serde_json::to_string(answer).unwrap_or_default());
    let method = match words.as_slice() {
        ["list"] => {
            println!("{}", rpcd::LIST);
            return 0;
        }
        ["call", method] => *method,
        _ => {
            eprintln!("l2vip: rpcd needs list or call METHOD\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    let mut input = Vec::new();
    let read = std::io::Read::read_to_end(
        &mut std::io::Read::take(std::io::stdin().lock(), rpcd::MAX_INPUT),
        &mut input,
    );
    let request = match read {
        Ok(_) => rpcd::request(method, &input),
        Err(e) => Err(format!("cannot read the arguments: {e}")),
    };
    let request = match request {
        Ok(request) => request,
        Err(message) => {
            print(&rpcd::error("invalid_argument", &message));
            return EXIT_REFUSED;
        }
    };
    match client::request(&socket, &request) {
        Ok(reply) => {
            let refused = reply.outcome.is_err();
            print(&rpcd::answer(method, reply.outcome));
            if refused {
                EXIT_REFUSED
            } else {
                0
            }
        }
        Err(ClientError::Unreachable(message)) => {
            print(&rpcd::error("unreachable", &message));
            EXIT_UNREACHABLE
        }
        Err(ClientError::TimedOut(message)) => {
            print(&rpcd::error("timeout", &message));
            EXIT_REFUSED
        }
        Err(ClientError::Protocol(message)) => {
            print(&rpcd::error("protocol", &message));
            EXIT_REFUSED
        }
    }
}

struct Options {
    config: PathBuf,
    verbose: bool,
    syslog: bool,
    offline: bool,
    notify: Option<String>,
}

fn parse_options(command: &str, args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        config: PathBuf::from(DEFAULT_PATH),
        verbose: false,
        syslog: false,
        offline: false,
        notify: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-c" | "--config" => {
                let path = args.next().ok_or_else(|| format!("{arg} needs a file"))?;
                options.config = PathBuf::from(path);
            }
            "-v" | "--verbose" => options.verbose = true,
            "--syslog" if command == "daemon" => options.syslog = true,
            "--notify" if command == "daemon" => {
                let command = args.next().ok_or("--notify needs a command")?;
                if command.trim().is_empty() {
                    return Err("--notify: empty command".to_string());
                }
                options.notify = Some(command.clone());
            }
            "--offline" if command == "check-config" => options.offline = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

fn init_logging(verbose: bool, to_syslog: bool) {
    let default = if verbose { "debug" } else { "info" };
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default));
    let sink = to_syslog.then(syslog::Syslog::connect);
    match sink {
        Some(Ok(sink)) => {
            let pid = std::process::id();
            builder
                .format(move |buf, record| {
                    writeln!(
                        buf,
                        "<{}>l2vip[{pid}]: {}",
                        syslog::priority(record.level()),
                        record.args()
                    )
                })
                .target(env_logger::Target::Pipe(Box::new(sink)));
        }
        other => {
            builder.format(|buf, record| {
                writeln!(
                    buf,
                    "l2vip: {}: {}",
                    record.level().as_str().to_lowercase(),
                    record.args()
                )
            });
            if let Some(Err(e)) = other {
                eprintln!(
                    "l2vip: warn: cannot log to {}: {e}; logging to stderr",
                    syslog::PATH
                );
            }
        }
    }
    builder.init();
}

fn check_config(options: &Options) -> u8 {
    let loaded = if options.offline {
        let host = config::hostname();
        config::load(&options.config, host.as_deref()).map(|(config, _)| config)
    } else {
        config::load_config(&options.config).and_then(|config| {
            config::load_key(&config)
                .map(|_| config)
                .map_err(|e| config::LoadError::new(&options.config, e))
        })
    };
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
        "status" | "services" | "metrics" | "drain" | "undrain" | "handover" | "add" | "remove"
        | "reload" => client_command(command, rest),
        "rpcd" => rpcd_command(rest),
        "daemon" | "check-config" => match parse_options(command, rest) {
            Ok(options) if command == "daemon" => {
                init_logging(options.verbose, options.syslog);
                daemon::run(&options.config, options.notify)
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
