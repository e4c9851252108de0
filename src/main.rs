//! The `ha-metrics-server` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    ha_metrics_server::cli::main()
}
